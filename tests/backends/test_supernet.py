"""The supernet: exact paths, first-k sharing, untouched weights, BN recalibration, samplers.

References: ``autoarch.compile`` (an ordinary candidate module), plain torch
(nn.BatchNorm1d, a stand-alone AdamW step on the extracted candidate), and
counting (fair visits, constraint values from the graph's parameter formula).
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

import autoarch
from autoarch.backends.torch.supernet import Supernet, masked_step, recalibrate_batchnorm
from autoarch.search.path_samplers import make_path_sampler
from autoarch.search.supernet import Validity, score_candidate

TRAIN = "train { data = digits  epochs = 1  batch = 32 }\n"

#: one space per op family: sizes that slice, alternatives that get their own modules
FAMILIES = {
    "linear": """
model m(x: [12]) -> [5] {
  h = linear(x, choice(8, 16, 24), bias = choice(true, false))
  return linear(act(h, relu), 5)
}""",
    "mlp": """
model m(x: [12]) -> [5] {
  h = x
  repeat choice(1, 2, 3) {
    h = h + choice(mlp(layernorm(h), expand = choice(1, 2, 4)),
                   glu(rmsnorm(h), hidden = choice(8, 16)),
                   moe(h, experts = 2, top_k = 1, hidden = choice(8, 16)))
  }
  return mlp(h, hidden = choice(6, 10), out = 5)
}""",
    "mixer": """
model m(x: [24]) -> [5] {
  h = reshape(x, [4, 6])
  h = h + mixer(layernorm(h), hidden = choice(3, 8))
  h = linear(h, choice(6, 12))
  return linear(flatten(h), 5)
}""",
    "kan": """
model m(x: [12]) -> [5] {
  let w = choice(8, 16)
  h = kan(x, w, basis = choice(rational, rbf, bspline), groups = 4)
  h = kan(h, choice(8, 12), basis = rational, groups = 4, hidden = choice(8, 16))
  return linear(h, 5)
}""",
    "attention": """
model m(x: [24]) -> [5] {
  h = linear(reshape(x, [4, 6]), choice(8, 16))
  repeat choice(1, 2) {
    h = h + attention(layernorm(h), heads = choice(1, 2),
                      kind = choice(softmax, linear, gla, hedgehog),
                      qk = choice(separate, shared, symmetric))
  }
  return linear(flatten(h), 5)
}""",
    "conv": """
model m(x: [3, 8, 8]) -> [5] {
  h = conv(x, choice(4, 8), kernel = choice(1, 3))
  h = batchnorm(relu(h))
  h = choice(conv(h, choice(4, 8), kernel = 3, stride = 2), maxpool(h, 2), avgpool(h, 2))
  return linear(flatten(h), 5)
}""",
    "norms": """
model m(x: [12]) -> [5] {
  h = linear(x, choice(8, 16))
  h = choice(batchnorm(h), layernorm(h), rmsnorm(h))
  h = optional(dropout(h, 0.1))
  return linear(h, 5)
}""",
}


def _spec(body: str) -> autoarch.Spec:
    return autoarch.loads(body + "\n" + TRAIN)


def _inputs(spec: autoarch.Spec, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    shape = spec.build(spec.space().sample(seed=0)).input_shape
    return torch.randn((n, *shape), generator=g)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_extracted_path_is_exact_and_an_ordinary_module(family: str) -> None:
    spec = _spec(FAMILIES[family])
    net = Supernet(spec, seed=0)
    x = _inputs(spec)
    for seed in range(8):
        choices = spec.space().sample(seed=seed)
        model = net.extract(choices)
        ref = autoarch.compile(spec, choices, seed=0)
        assert type(model).__name__ == type(ref).__name__
        assert list(model.state_dict()) == list(ref.state_dict())
        assert model.code == ref.code
        net.eval()
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x), net(x, choices), rtol=0, atol=1e-6)


def test_widths_share_the_first_k_of_the_widest_weights() -> None:
    spec = _spec(FAMILIES["linear"])
    net = Supernet(spec, seed=0)
    wide = net.extract({"m.h": 24, "m.h.bias": True})
    narrow = net.extract({"m.h": 8, "m.h.bias": True})
    w24, w8 = wide.linear.weight, narrow.linear.weight
    assert w24.shape == (24, 12) and w8.shape == (8, 12)
    assert torch.equal(w8, w24[:8])  # the OFA rule: first k rows
    # the head's input width follows: first 8 of its 24 columns
    assert torch.equal(narrow.linear_2.weight, wide.linear_2.weight[:, :8])
    # a different bias setting is another module, not a slice
    nobias = net.extract({"m.h": 24, "m.h.bias": False})
    assert not torch.equal(nobias.linear.weight, w24)


def test_repeat_depths_share_the_first_iterations() -> None:
    spec = _spec(FAMILIES["mlp"])
    net = Supernet(spec, seed=0)
    base = {"m.repeat[0].h": "mlp", "m.repeat[0].h.expand": 2, "m.return.hidden": 6}
    deep = {**base, "m.repeat": 3, "m.repeat[1].h": "mlp", "m.repeat[1].h.expand": 2,
            "m.repeat[2].h": "mlp", "m.repeat[2].h.expand": 2}
    shallow, tall = net.extract({**base, "m.repeat": 1}), net.extract(deep)
    sd_short, sd_tall = shallow.state_dict(), tall.state_dict()
    shared = [k for k in sd_short if k in sd_tall]
    assert any(k.startswith("repeat_0_") for k in shared)
    for k in shared:
        assert torch.equal(sd_short[k], sd_tall[k]), k
    assert any(k.startswith("repeat_2_") for k in sd_tall) and not any(
        k.startswith("repeat_2_") for k in sd_short)


def _snapshot(net: Supernet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_a_step_leaves_unsampled_weights_bit_identical_and_matches_a_standalone_step() -> None:
    spec = _spec(FAMILIES["mlp"])
    net = Supernet(spec, seed=0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99))
    x, y = _inputs(spec, 16), torch.randint(0, 5, (16,))
    path_a = {"m.repeat": 1, "m.repeat[0].h": "mlp", "m.repeat[0].h.expand": 1,
              "m.return.hidden": 6}
    path_b = {"m.repeat": 2, "m.repeat[0].h": "glu", "m.repeat[0].h.hidden#1": 16,
              "m.repeat[1].h": "moe", "m.repeat[1].h.hidden#2": 16, "m.return.hidden": 10}
    # the reference: the candidate alone, from the weights it inherits, with its own AdamW
    alone = net.extract(path_a)
    alone_opt = torch.optim.AdamW(alone.parameters(), lr=1e-2, weight_decay=0.1,
                                  betas=(0.9, 0.99))
    # A twice (its second step has momentum and a step count of 2), then B, which
    # must leave A's own weights and their optimizer state untouched
    for choices in (path_a, path_a, path_b):
        before = _snapshot(net)
        opt.zero_grad(set_to_none=True)
        with net.tracking() as used:
            nn.functional.cross_entropy(net(x, choices), y).backward()
            masked_step(opt, used)
        after = _snapshot(net)
        path = net.path(choices)
        touched: dict[str, list[torch.Size]] = collections.defaultdict(list)
        for b in path.bindings:
            touched[f"slots.{b.slot}.{b.rank}.{b.local}"].append(b.shape)
        for k, old in before.items():
            new = after[k]
            if k not in touched:
                assert torch.equal(old, new), f"{k} moved though path did not use it"
                continue
            outside = torch.ones_like(old, dtype=torch.bool)
            for s in touched[k]:
                outside[tuple(slice(0, d) for d in s)] = False
            assert torch.equal(old[outside], new[outside]), f"{k} moved outside the path's part"
        if choices is path_b:
            continue
        alone_opt.zero_grad()
        nn.functional.cross_entropy(alone(x), y).backward()
        alone_opt.step()
        inherited = net.extract(path_a).state_dict()
        for k, v in alone.state_dict().items():
            torch.testing.assert_close(inherited[k], v, rtol=0, atol=1e-6)


def test_batchnorm_recalibration_equals_a_fresh_batchnorm_on_the_same_batches() -> None:
    spec = _spec("""
model m(x: [12]) -> [5] {
  h = batchnorm(x)
  return linear(h, choice(5, 6) - 1)
}""")
    net = Supernet(spec, seed=0)
    model = net.extract({"m.return": 6})
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    bn.running_mean.fill_(7.0)  # stale statistics from supernet training
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(9, 12, generator=g) * (i + 1) + i for i in range(4)]
    assert recalibrate_batchnorm(model, batches) == 1
    ref = nn.BatchNorm1d(12, momentum=None)
    ref.train()
    for b in batches:
        ref(b)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    assert bn.momentum == 0.1  # restored after the cumulative average
    # the cumulative mean is the average of the batch means
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0))


def test_fair_sampler_visits_each_alternative_exactly_once_per_step() -> None:
    spec = _spec("""
model m(x: [12]) -> [5] {
  h = act(linear(x, choice(8, 16, 24)), choice(relu, gelu, tanh))
  h = choice(mlp(h, hidden = 8), kan(h, 8, groups = 4), linear(h, 8))
  return linear(h, 5)
}""")
    sampler = make_path_sampler("fair", spec, Validity(spec), seed=1)
    decisions = [d.name for d in spec.space().decisions]
    for _ in range(5):
        paths = sampler.paths(0.0)
        assert len(paths) == 3
        for name in decisions:
            got = collections.Counter(repr(p[name]) for p in paths)
            want = collections.Counter(repr(v) for v in spec.space()[name].values())
            assert got == want, name


def test_fair_sampler_with_unequal_arities_differs_by_at_most_one() -> None:
    spec = _spec("""
model m(x: [12]) -> [5] {
  h = act(linear(x, choice(8, 16, 24, 32)), choice(relu, gelu))
  return linear(h, 5)
}""")
    sampler = make_path_sampler("fair", spec, Validity(spec), seed=2)
    paths = sampler.paths(0.0)
    assert len(paths) == 4
    assert sorted(collections.Counter(p["m.h#1"] for p in paths).values()) == [1, 1, 1, 1]
    assert sorted(collections.Counter(p["m.h#2"] for p in paths).values()) == [2, 2]


@pytest.mark.parametrize("name", ["uniform", "fair", "pada"])
def test_sampled_paths_meet_the_constraints(name: str) -> None:
    spec = autoarch.loads(FAMILIES["mlp"] + "\n" + TRAIN +
                          "search { strategy = oneshot  constraint params <= 900 }\n")
    space = spec.space()
    sizes = [spec.build(c).params for c in space.enumerate()]
    assert min(sizes) <= 900 < max(sizes)  # the constraint cuts the space
    sampler = make_path_sampler(name, spec, Validity(spec), seed=0)
    seen = set()
    for step in range(30):
        for p in sampler.paths(step / 30):
            params = spec.build(p).params
            assert params <= 900
            seen.add(repr(sorted(p.items())))
    assert len(seen) > 3


def test_pada_favours_alternatives_with_larger_gradient_norms() -> None:
    spec = _spec("""
model m(x: [12]) -> [5] {
  h = act(linear(x, 8), choice(relu, gelu))
  return linear(h, 5)
}""")
    sampler = make_path_sampler("pada", spec, Validity(spec), seed=0)
    for _ in range(20):
        for v in ("relu", "gelu"):
            sampler.feedback([{"m.h": v}], 9.0 if v == "relu" else 1.0)
    early = collections.Counter(sampler.paths(0.0)[0]["m.h"] for _ in range(400))
    late = collections.Counter(sampler.paths(1.0)[0]["m.h"] for _ in range(400))
    assert abs(early["relu"] - 200) < 60  # uniform before the ramp
    assert late["relu"] > 300  # about 90% once importance is ramped in
    # the importance weight undoes the bias: relu (p = 0.9) weighs 0.5 / 0.9, gelu
    # (p = 0.1) 0.5 / 0.1 = 5, the clip
    for _ in range(20):
        path = sampler.paths(1.0)
        w = sampler.path_weights(path)[0]
        want = 0.5 / 0.9 if path[0]["m.h"] == "relu" else 5.0
        assert w == pytest.approx(want)


def test_score_candidate_uses_inherited_weights() -> None:
    spec = _spec(FAMILIES["linear"].replace("[12]", "[64]").replace("5]", "10]")
                 .replace("(h, relu), 5)", "(h, relu), 10)"))
    net = Supernet(spec, seed=0)
    choices = {"m.h": 16, "m.h.bias": True}
    got = score_candidate(net, choices)
    assert set(got) >= {"val_loss", "val_accuracy", "params", "flops"}
    assert got["params"] == spec.build(choices).params
    assert 0.0 <= got["val_accuracy"] <= 1.0


def test_slots_grow_for_a_path_larger_than_the_scan_saw() -> None:
    spec = _spec(FAMILIES["linear"])
    net = Supernet(spec, seed=0, scan_limit=1)  # sized from one candidate only
    small = spec.space().sample(seed=0)
    for c in spec.space().enumerate():
        net.extract(c)  # every path fits after growing
    x = _inputs(spec)
    net.eval()
    for c in spec.space().enumerate():
        with torch.no_grad():
            torch.testing.assert_close(net.extract(c).eval()(x), net(x, c), rtol=0, atol=1e-6)
    assert net.path(small)


def test_the_path_sampler_setting_names_exactly_the_samplers() -> None:
    from autoarch.compiler.settings import PATH_SAMPLERS
    from autoarch.search.path_samplers import SAMPLERS

    assert tuple(SAMPLERS) == PATH_SAMPLERS
