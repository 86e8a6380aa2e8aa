"""Forward time of compiled candidates against hand-written twins; compile time per candidate.

For candidates of examples/hourglass.spec and examples/nb201.spec, the module
`autoarch.compile` makes is timed against a hand-written `nn.Module` of the same
architecture holding the same weights (checked: same outputs). The ratio
compiled / hand-written is the lowering's overhead: goal at most 1.10, aim 1.02.
Run: ``python benchmarks/bench_lowering.py [--repeats 200]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402

import autoarch  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


class HourglassTwin(nn.Module):
    def __init__(self, wide: int, hiddens: list[int]):
        super().__init__()
        self.lift = nn.Linear(64, wide)
        self.norms = nn.ModuleList(nn.LayerNorm(wide) for _ in hiddens)
        self.downs = nn.ModuleList(nn.Linear(wide, h) for h in hiddens)
        self.ups = nn.ModuleList(nn.Linear(h, wide) for h in hiddens)
        self.head = nn.Linear(wide, 10)

    def forward(self, x):
        h = self.lift(x)
        for norm, down, up in zip(self.norms, self.downs, self.ups, strict=True):
            h = h + up(F.gelu(down(norm(h))))
        return self.head(h)

    def copy_from(self, compiled: nn.Module) -> HourglassTwin:
        mods = [m for m in compiled.children()]
        self.lift.load_state_dict(mods[0].state_dict())
        for i in range(len(self.norms)):
            self.norms[i].load_state_dict(mods[1 + 3 * i].state_dict())
            self.downs[i].load_state_dict(mods[2 + 3 * i].state_dict())
            self.ups[i].load_state_dict(mods[3 + 3 * i].state_dict())
        self.head.load_state_dict(mods[-1].state_dict())
        return self


class NB201Twin(nn.Module):
    def __init__(self, kinds: list[str]):
        super().__init__()
        self.kinds = kinds
        self.convs = nn.ModuleDict({
            str(i): nn.Conv2d(16, 16, 1 if k == "conv#1" else 3, padding="same")
            for i, k in enumerate(kinds) if k.startswith("conv")})
        self.head = nn.Linear(16 * 8 * 8, 10)

    def op(self, i: int, x):
        k = self.kinds[i]
        if k == "zero":
            return torch.zeros_like(x)
        if k == "identity":
            return x
        if k == "avgpool":
            return F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)
        return self.convs[str(i)](F.relu(x))

    def forward(self, x):
        n1 = self.op(0, x)
        n2 = self.op(1, x) + self.op(2, n1)
        n3 = self.op(3, x) + self.op(4, n1) + self.op(5, n2)
        return self.head(n3.flatten(1))

    def copy_from(self, compiled: nn.Module) -> NB201Twin:
        convs = [m.conv for m in compiled.modules() if hasattr(m, "conv")]
        for twin, conv in zip(self.convs.values(), convs, strict=True):
            twin.load_state_dict(conv.state_dict())
        self.head.load_state_dict(compiled.linear.state_dict())
        return self


def timed_pair(a, b, repeats: int) -> tuple[float, float]:
    """Median seconds of ``a()`` and ``b()``, measured alternately so drift hits both."""
    for _ in range(5):
        a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    cases = []
    hourglass = autoarch.load(ROOT / "examples" / "hourglass.spec")
    for seed in (0, 1):
        cand = hourglass.space().sample(seed)
        hiddens = [cand[f"hourglass.repeat[{i}].h"] for i in range(cand["hourglass.repeat"])]
        cases.append(("hourglass", hourglass, cand, torch.randn(256, 64),
                      lambda m, c=cand, h=hiddens: HourglassTwin(c["hourglass.wide"], h)))
    nb201 = autoarch.load(ROOT / "examples" / "nb201.spec")
    for seed in (0, 3):
        cand = nb201.space().sample(seed)
        kinds = [cand[f"nb201.cell.op#{k}"] for k in range(1, 7)]
        cases.append(("nb201", nb201, cand, torch.randn(64, 16, 8, 8),
                      lambda m, k=kinds: NB201Twin(k)))
    ratios = []
    with torch.no_grad():
        for name, spec, cand, x, make_twin in cases:
            model = autoarch.compile(spec, cand, seed=0).eval()
            twin = make_twin(model).copy_from(model).eval()
            torch.testing.assert_close(model(x), twin(x))  # same architecture, same weights
            ours, theirs = timed_pair(lambda m=model, x=x: m(x), lambda m=twin, x=x: m(x),
                                      args.repeats)
            ratios.append(ours / theirs)
            print(f"{name:10s} {len(spec.build(cand)):3d} ops: compiled {ours * 1e3:7.3f} ms, "
                  f"hand-written {theirs * 1e3:7.3f} ms, ratio {ours / theirs:.3f}")
    worst = max(ratios)
    print(f"worst ratio {worst:.3f} (goal <= 1.10, aim 1.02): "
          f"{'meets' if worst <= 1.10 else 'MISSES'} the goal")
    for name, spec in (("hourglass", hourglass), ("nb201", nb201)):
        space = spec.space()
        start = time.perf_counter()
        for seed in range(50):
            autoarch.compile(spec, space.sample(seed), seed=seed)
        per = (time.perf_counter() - start) / 50
        print(f"compile time {name}: {per * 1e3:.2f} ms per candidate (spec -> nn.Module)")


if __name__ == "__main__":
    main()
