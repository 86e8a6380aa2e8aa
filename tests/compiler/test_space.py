"""Search spaces: counts, decision names, conditions, sampling and enumeration.

Counts are checked against closed formulas (the contract's, or worked out by
hand below) and, independently, against lazy enumeration, which walks the
candidates one by one by re-running elaboration: a different algorithm from the
structural count.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

import autoarch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> autoarch.Spec:
    return autoarch.load(EXAMPLES / f"{name}.spec")


def spec_of(body: str, head: str = "model m(x: [16]) -> [16] {", tail: str = "") -> autoarch.Spec:
    return autoarch.loads(dedent(head) + "\n" + dedent(body) + "\n}\n" + dedent(tail), "t.spec")


def enumerated(space: autoarch.Space, **kw) -> list[dict]:
    out = list(space.enumerate(**kw))
    keys = [tuple(sorted(c.items(), key=lambda kv: kv[0])) for c in out]
    assert len(set(map(repr, keys))) == len(keys), "enumeration repeated a candidate"
    return out


# ---- the contract's examples ----------------------------------------------------

CONTRACT = {
    "quickstart": 3 * (6 + 6**2 + 6**3),
    "nb201": 5**6,
    "hourglass": 2 * (3**2 + 3**3 + 3**4 + 3**5 + 3**6),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_contract_counts(name):
    space = load(name).space()
    assert space.count() == CONTRACT[name]
    assert space.discrete_count() == CONTRACT[name]


def test_contract_tabular_counts_discrete_structures_and_continuous_lr():
    space = load("tabular").space()
    assert space.count() is None
    assert space.discrete_count() == 3 * 3 * (5 + 5**2 + 5**3 + 5**4) == 7020
    assert [d.name for d in space.continuous] == ["lr"]


@pytest.mark.parametrize("name", ["quickstart", "hourglass", "nb201"])
def test_contract_counts_match_enumeration(name):
    assert len(enumerated(load(name).space())) == CONTRACT[name]


def test_tabular_enumeration_with_one_point_per_continuous_decision():
    space = load("tabular").space()
    assert len(enumerated(space, float_points=1)) == 7020
    assert len(list(space.enumerate(float_points=2))) == 2 * 7020


def test_enumerating_a_continuous_space_without_points_is_an_error():
    with pytest.raises(autoarch.AssignmentError, match="continuous"):
        list(load("tabular").space().enumerate())


# ---- decision names (contract rule 4) ---------------------------------------------


def test_quickstart_decision_names():
    names = [d.name for d in load("quickstart").space().decisions]
    block = ["h", "h.mlp.expand", "h.kan.basis", "h.attention.heads"]
    assert names == ["digits.width", "digits.i"] + [
        f"digits.i[{i}].{n}" for i in range(3) for n in block]


def test_nb201_names_number_the_calls_of_one_def():
    names = [d.name for d in load("nb201").space().decisions]
    assert names == [f"nb201.cell.op#{k}" for k in range(1, 7)]
    assert load("nb201").space()["nb201.cell.op#4"].choices == (
        "zero", "identity", "conv#1", "conv#2", "avgpool")


def test_hourglass_and_tabular_names():
    assert [d.name for d in load("hourglass").space().decisions] == [
        "hourglass.wide", "hourglass.repeat"] + [f"hourglass.repeat[{i}].h" for i in range(6)]
    names = [d.name for d in load("tabular").space().decisions]
    assert names[:4] == ["lr", "tabular.init", "tabular.sparsity", "tabular.repeat"]
    assert names[4:7] == ["tabular.repeat[0].h", "tabular.repeat[0].h.hidden",
                          "tabular.repeat[0].h.groups"]


def quickstart_names(cand: dict) -> set[str]:
    """The decision names a quickstart candidate has, by the naming rule (docs/space.md)."""
    keyword = {"mlp": "expand", "kan": "basis", "attention": "heads"}
    names = {"digits.width", "digits.i"}
    for i in range(cand["digits.i"]):
        alt = cand[f"digits.i[{i}].h"]
        names |= {f"digits.i[{i}].h", f"digits.i[{i}].h.{alt}.{keyword[alt]}"}
    return names


def test_names_do_not_depend_on_sampling_order():
    spec = load("quickstart")
    space = spec.space()
    for seed in range(20):
        cand = space.sample(seed)
        assert set(cand) == quickstart_names(cand)
        # the same assignment given in other orders builds the same candidate
        reordered = [dict(reversed(cand.items())), dict(sorted(cand.items())),
                     dict(sorted(cand.items(), key=lambda kv: (len(kv[0]), kv[0]))[::-1])]
        graphs = [spec.build(c) for c in [cand, *reordered]]
        assert len({g.hash for g in graphs}) == 1
        assert all(g.choices == cand for g in graphs)


def test_names_do_not_depend_on_the_order_of_top_level_items():
    # defs and top-level lets may come before or after the model
    model = """
        model m(x: [16]) -> [16] {
          h = block(x)
          return linear(h, 16)
        }
    """
    block = """
        def block(x) {
          return choice(a: mlp(x, expand = choice(2, 4)), b: relu(linear(x, width)))
        }
    """
    width = "let width = choice(8, 16)\n"
    first = autoarch.loads(dedent(width + block + model), "a.spec")
    second = autoarch.loads(dedent(model + block + width), "b.spec")
    expected = ["width", "m.block", "m.block.a.expand"]  # a def call scopes by its name
    assert [d.name for d in first.space().decisions] == expected
    assert [d.name for d in second.space().decisions] == expected
    for seed in range(10):
        cand = first.space().sample(seed)
        assert first.build(cand).hash == second.build(cand).hash


def test_def_instances_and_repeat_iterations_in_names():
    spec = spec_of("""
        repeat 2 as blocks {
          h = x + block(x)
        }
        return h
    """, tail="""
        def block(x) {
          let kind = choice(mlp, glu)
          return mlp(x, expand = 2) if kind == mlp else glu(x, 32)
        }
    """)
    assert [d.name for d in spec.space().decisions] == [
        "m.blocks[0].block.kind", "m.blocks[1].block.kind"]


# ---- sharing, freshness, conditionality --------------------------------------------


def test_let_choice_is_one_shared_decision():
    spec = spec_of("""
        let w = choice(8, 16, 32)
        h = linear(linear(x, w), w)
        return linear(h, 16)
    """)
    space = spec.space()
    assert [d.name for d in space.decisions] == ["m.w"]
    assert space.count() == 3
    g = spec.build({"m.w": 32})
    assert [n["shape"] for _, n in g.nx.nodes(data=True) if n["op"] == "linear"] == [
        (32,), (32,), (16,)]


def test_top_level_let_is_shared_by_model_and_train():
    spec = autoarch.loads(dedent("""
        let w = choice(8, 16)
        model m(x: [16]) -> [16] { return linear(linear(x, w), 16) }
        train { batch = w  epochs = 1 }
    """), "t.spec")
    assert spec.space().count() == 2
    assert spec.train_config({"w": 16})["batch"] == 16


def test_fresh_choice_in_each_repeat_iteration_and_def_call():
    spec = spec_of("""
        h = f(x) + f(x)
        repeat 3 { h = linear(h, choice(16, 16 + 0, 16 * 1)) }
        return h
    """, tail="def f(x) = linear(x, choice(16, 16 + 0))\n")
    space = spec.space()
    assert space.count() == 2 * 2 * 3**3
    assert len(enumerated(space)) == 2 * 2 * 3**3


def test_with_value_is_evaluated_once():
    spec = spec_of("""
        with init = choice(kaiming, xavier), bias = choice(true, false) {
          h = linear(linear(linear(x, 8), 8), 16)
        }
        return h
    """)
    space = spec.space()
    assert [d.name for d in space.decisions] == ["m.init", "m.bias"]
    assert space.count() == 4
    g = spec.build({"m.init": "xavier", "m.bias": False})
    linears = [n for _, n in g.nx.nodes(data=True) if n["op"] == "linear"]
    assert {n["attrs"]["init"] for n in linears} == {"xavier"}
    assert g.params == 16 * 8 + 8 * 8 + 8 * 16  # no biases


def test_untaken_alternative_has_no_decisions():
    spec = spec_of("""
        h = choice(a: linear(x, choice(8, 16)), b: relu(x))
        return linear(h, 16)
    """)
    space = spec.space()
    assert space["m.h.a"].describe_condition() == "m.h == 'a'"
    assert spec.space().count() == 3
    assert "m.h.a" not in spec.build({"m.h": "b"}).choices


def test_lazy_if_else_only_evaluates_the_branch_taken():
    spec = spec_of("""
        let deep = choice(true, false)
        h = linear(relu(linear(x, choice(32, 64))), 16) if deep else linear(x, choice(4, 8, 16))
        return h
    """)
    space = spec.space()
    assert space.count() == 2 + 3
    assert len(enumerated(space)) == 5
    assert set(spec.build({"m.deep": False, "m.h#2": 16}).choices) == {"m.deep", "m.h#2"}


def test_a_conditional_numbers_its_test_before_its_branches():
    """Colliding names are numbered in evaluation order: ``a if c else b`` runs ``c``
    first, so the test's decision is #1 although it stands second in the source."""
    spec = spec_of("""
        h = linear(x, choice(2, 3) if choice(true, false) else choice(4, 5))
        return linear(h, 16)
    """)
    space = spec.space()
    assert {d.name: d.choices for d in space.decisions} == {
        "m.h#1": (True, False), "m.h#2": (2, 3), "m.h#3": (4, 5)}
    g = spec.build({"m.h#1": False, "m.h#3": 5})
    assert dict(g.choices) == {"m.h#1": False, "m.h#3": 5}
    assert g.params == (16 * 5 + 5) + (5 * 16 + 16)


# ---- control flow steered by decisions (analysis forks) ---------------------------


def test_shared_count_used_by_two_repeats():
    spec = spec_of("""
        let d = choice(1, 2)
        repeat d { h = relu(linear(x, choice(8, 16))) }
        repeat d { x = linear(x, 16) + linear(x, choice(16, 16 + 0, 16 * 1)) }
        return x
    """)
    want = sum(2**d * 3**d for d in (1, 2))
    assert spec.space().count() == want
    assert len(enumerated(spec.space())) == want


def test_if_on_a_shared_choice_inside_a_repeat():
    spec = spec_of("""
        let attn = choice(true, false)
        h = reshape(x, [4, 4])
        repeat 3 {
          h = h + (attention(h, choice(1, 2)) if attn else mlp(h, expand = choice(2, 4, 8)))
        }
        return flatten(h)
    """)
    assert spec.space().count() == 2**3 + 3**3
    assert len(enumerated(spec.space())) == 2**3 + 3**3


def test_if_on_the_repeat_index_needs_no_fork():
    spec = spec_of("""
        repeat 4 as i { x = linear(x, choice(16, 16 * 1)) if i % 2 == 0 else relu(x) }
        return x
    """)
    assert spec.space().count() == 2**2


def test_if_on_a_fresh_choice_inside_an_alternative_forks_on_the_alternative_first():
    spec = spec_of("""
        h = choice(a: (linear(x, 16) if choice(true, false) else relu(x)), b: tanh(x))
        return h
    """)
    space = spec.space()
    assert space.count() == 3
    assert len(enumerated(space)) == 3


def test_nested_repeats_with_chosen_counts():
    spec = spec_of("""
        repeat choice(1, 2) as i {
          repeat choice(0, 1, 2) as j { x = linear(x, choice(16, 16 * 1)) }
        }
        return x
    """)
    per_outer = sum(2**j for j in (0, 1, 2))
    assert spec.space().count() == per_outer + per_outer**2
    assert len(enumerated(spec.space())) == per_outer + per_outer**2


def test_optional_and_stepped_ranges():
    spec = spec_of("""
        h = optional(dropout(x, choice(0.1, 0.2)))
        repeat int(0, 2) { h = optional(relu(h)) }
        h = linear(h, int(8, 64, step = 8))
        h = dropout(h, float(0.0, 0.5, step = 0.1))
        return linear(h, int(16, 16, log = true))
    """)
    want = 3 * (1 + 2 + 4) * 8 * 6 * 1
    assert spec.space().count() == want
    assert len(enumerated(spec.space())) == want
    g = spec.build(spec.elaborate(autoarch.FirstDecider(), build=False).choices)
    assert g.nx.nodes[1]["op"] == "dropout"


def test_optional_off_passes_its_first_argument_through():
    spec = spec_of("""
        return optional(linear(relu(x), 16))
    """)
    ops_on = [n["op"] for _, n in spec.build({"m.return": True}).nx.nodes(data=True)]
    ops_off = [n["op"] for _, n in spec.build({"m.return": False}).nx.nodes(data=True)]
    assert ops_on == ["input", "relu", "linear", "output"]
    assert ops_off == ["input", "relu", "output"]


# ---- conditions ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["quickstart", "hourglass", "tabular"])
def test_conditions_agree_with_sampled_candidates(name):
    space = load(name).space()
    for seed in range(60):
        cand = space.sample(seed)
        for d in space.decisions:
            assert d.exists_under(cand) == (d.name in cand), (d.name, cand)


def test_conditions_agree_with_every_candidate_when_analysis_forks():
    spec = spec_of("""
        let d = choice(0, 1, 2)
        let attn = choice(true, false)
        repeat d { x = (linear(x, choice(16, 16 * 1)) if attn else relu(x)) }
        return x if d > 0 else linear(x, choice(16, 16 * 1))
    """)
    space = spec.space()
    cands = enumerated(space)
    assert space.count() == len(cands) == (2 + 2) + (2 + 1) + (4 + 1)
    for cand in cands:
        for d in space.decisions:
            assert d.exists_under(cand) == (d.name in cand), (d.name, cand)


# ---- scale ---------------------------------------------------------------------


def test_a_huge_space_counts_from_its_structure():
    blocks = 24
    spec = spec_of(f"""
        let width = choice(64, 128, 256)
        h = linear(reshape(x, [4, 4]), width)
        repeat {blocks} {{
          h = h + choice(attention(layernorm(h), heads = choice(1, 2, 4, 8)),
                         mlp(layernorm(h), expand = choice(2, 4)),
                         kan(layernorm(h), width, basis = choice(rational, rbf, relu)))
        }}
        return flatten(linear(mean(h, 0), 1))
    """)
    assert spec.space().count() == 3 * (4 + 2 + 3) ** blocks  # about 2.4e23


def test_a_repeat_with_a_chosen_count_up_to_a_thousand():
    spec = spec_of("""
        repeat int(1, 1000) { x = linear(x, choice(16, 16 * 1, 16 + 0)) }
        return x
    """)
    assert spec.space().count() == sum(3**k for k in range(1, 1001))


# ---- sampling ------------------------------------------------------------------


def test_sample_is_deterministic_and_within_domains():
    space = load("tabular").space()
    for seed in range(30):
        cand = space.sample(seed)
        assert cand == space.sample(seed)
        for name, value in cand.items():
            assert space[name].contains(value), (name, value)
    assert len({repr(space.sample(s)) for s in range(30)}) > 25


def test_log_int_sampling_covers_the_range():
    spec = spec_of("return linear(x, 16) + linear(x, 16) * float(1, 2) + dropout(x, 0.1)"
                   .replace("float(1, 2)", "int(1, 1024, log = true)"))
    space = spec.space()
    values = [space.sample(s)["m.return"] for s in range(400)]
    assert min(values) < 8 and max(values) > 128  # log-uniform reaches both ends
    assert all(1 <= v <= 1024 for v in values)


def test_a_decision_met_again_in_an_excluding_alternative_is_one_decision():
    # optional's "off" branch evaluates its first argument, which holds the inner optional
    spec = spec_of("""
        return optional(dropout(optional(relu(x)), 0.1))
    """)
    space = spec.space()
    assert [(d.name, d.describe_condition()) for d in space.decisions] == [
        ("m.return#1", "always"), ("m.return#2", "always")]
    assert space.count() == 2 + 2
    assert len(enumerated(space)) == 4
    for d in space.decisions:
        for cand in space.enumerate():
            assert d.exists_under(cand) == (d.name in cand)


def test_stepped_float_samples_lie_on_the_grid():
    spec = spec_of("return dropout(x, float(0.0, 0.9, step = 0.3))")
    space = spec.space()
    assert space.count() == 4
    values = {space.sample(s)["m.return"] for s in range(60)}
    assert values == {0.0, 0.3, 0.6, 0.9}
