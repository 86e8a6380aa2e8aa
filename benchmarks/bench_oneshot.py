"""One-shot NAS benchmark: how well a trained supernet ranks candidates, and at what cost.

WHAT (issue 11, item 7). On a mixed MLP / KAN / attention space over a small
digits set, the validation accuracy a candidate gets with weights inherited from a
supernet is compared with the one it gets when trained stand-alone:

- ground truth: N candidates stratified by size (every valid candidate sorted by
  parameter count, N evenly spaced ones taken), each trained stand-alone with S
  seeds; its score is the mean validation accuracy over the seeds;
- ceiling: the Kendall tau between two seeds of stand-alone training (mean over
  the seed pairs): how well one stand-alone run ranks the candidates;
- naive baseline: the Kendall tau of ranking by parameter count;
- one-shot: for each path sampler (uniform, fair, pada) a supernet is trained,
  every candidate is scored with inherited weights (``score_candidate``), and
  Kendall tau and Spearman rho (scipy.stats) against the ground truth are given;
- cost: CPU seconds (``time.process_time``, all threads of this process) of
  building + training the supernet + scoring the N candidates, against training
  the same N candidates stand-alone once (one seed: the cost of evaluating them
  in a multi-trial search; the S-seed total is printed beside it).

Targets: tau >= param-count tau + 0.05, tau >= 0.7 x ceiling, one-shot compute
<= 1/10 of stand-alone. Whatever is measured is printed, met or not.

HOW. ``python benchmarks/bench_oneshot.py`` (full: 50 candidates x 3 seeds; uniform,
fair and pada, each at two budgets, 24 and 48 supernet epochs, with 2 supernet
seeds each; 7-11 minutes on 2 loaded CPU cores) or ``--quick`` (12 candidates,
1 seed, uniform at 24 epochs: a smoke run of about a minute; its compute ratio
means little, as a supernet costs the same for 12 candidates as for 50). Every
knob below is a flag (``--help``). torch runs on one thread (``--threads``) so
that CPU seconds compare on a loaded machine; a warm-up pays the one-time costs
(imports, the first lowering, torch.compile of the rational kernel, ~10 s) before
anything is timed.
Budgets are in supernet epochs of uniform and pada; fair trains m = 4 paths per
step (the 4 widths), so it gets epochs / m: the same number of path passes.
The table's "tau in width" is Kendall tau inside each width, averaged over the 4
widths: how well a ranking orders candidates beyond their size. "without monitor"
is the ratio without the fixed paths train_supernet scores after every epoch.

WHAT WAS TRIED (Kendall tau of inherited val accuracy against the 3-seed stand-alone
mean, 50 candidates, mean over 3 supernet seeds unless said; on this machine):

- data rows (stand-alone 20 epochs): 150 rows: accuracies 0.65-0.92, seed-vs-seed
  tau 0.68, parameter-count tau 0.76, fair 0.60-0.66; 300 rows: 0.85-0.96, 0.64,
  0.74, fair 0.67; 600 rows: 0.92-0.98, 0.64, 0.65, fair 0.60 (uniform 0.57) at
  twice the stand-alone cost. 300 is the default: the widest spread per CPU second.
- stand-alone epochs: 40 instead of 20 compresses the accuracies (0.91-0.97) and
  drops the seed-vs-seed tau to 0.48 (parameter count 0.63; the 20- and 40-epoch
  rankings agree at tau 0.77); uniform then gets 0.53 (60 supernet epochs) and 0.43
  (120) for the same share of a doubled cost. 20 is the default.
- supernet lr (AdamW, cosine, 30 / 60 epochs, uniform): 5e-4: 0.55 / 0.66; 1e-3
  (the spec's, the default): 0.56 / 0.63; 2e-3 and 3e-3: 0.47 / 0.34 (one seed)
  with the train loss at 0.13 - the supernet memorizes 300 rows and the inherited
  accuracies crowd together. Weight decay 0 or 0.1 instead of 0.01: 0.56 / 0.57
  (no change); batch 32 instead of 64: 0.59 (30 epochs), within the seed noise.
- supernet epochs (uniform): 15 / 30 / 60 / 120: 0.46 / 0.56 / 0.63 / 0.57, with a
  spread between supernet seeds of up to 0.1 (hence 2 supernet seeds per row).
- samplers at equal path passes: fair is the best and the steadiest (0.67, sd
  0.005 over seeds, against uniform's 0.56 and pada's 0.47 at 30 epochs of uniform);
  fair's 4-path steps also cost less CPU per path (one optimizer step per 4 paths).
- ranking by inherited val loss instead of accuracy: 0.69-0.74 for every sampler,
  always above accuracy (288 validation rows make accuracy coarse: ties, and the
  inherited accuracies of the narrow paths crowd together), still not above the
  parameter count.
- BatchNorm recalibration batches (``--bn-batches``): the space has LayerNorm only,
  so they change nothing here.
- what ranks: the supernet orders the widths (mean inherited accuracy rises with
  width, as the stand-alone one does) but hardly anything inside a width (tau in
  width -0.1..0.1 on accuracy, 0.1..0.3 on loss, against 0.32 for the parameter
  count and 0.22 for two stand-alone seeds); the parameter count orders the widths
  and the depths, which is most of what separates these candidates at 300 rows.
- the head: ``linear(flatten(h))`` after a width decision shares its input columns
  by flat first k (a width-16 path reads the columns a width-128 path uses for
  token 0). Slicing it per token instead (emulated outside the core) lowers the
  supernet's train loss (0.45 -> 0.20 at 60 epochs) but makes every width look
  alike: inherited accuracies 0.92-0.95, tau 0.44 / 0.13 (30 / 60 epochs), on val
  loss unchanged (0.70). So the misaligned head is what lets narrow paths score low.

RESULT (the full run with the defaults; taus repeat exactly, CPU ratios within
~0.01): no sampler meets the parameter-count target (best: fair, tau 0.674 /
0.679 against 0.738 + 0.05 = 0.788); every row but pada at 24 epochs (0.440)
meets 0.7 x ceiling (0.445); the 24-epoch budget meets the
compute target (0.07-0.09 of one stand-alone pass), fair at 12 epochs sits at the
line (0.099 and 0.111 in two runs), uniform and pada at 48 miss it (0.13-0.16)
and rank little better.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from scipy import stats

import autoarch
import autoarch.search.supernet as supernet_mod
from autoarch.backends.torch.supernet import Supernet
from autoarch.compiler.values import SymbolCall
from autoarch.search import trainer
from autoarch.search.data import Dataset, load_data
from autoarch.search.path_samplers import SAMPLERS

#: the space (1,032 candidates): like examples/quickstart.spec with a width of 16 added
#: so that sizes spread: 4 widths x depth 1-3 x per block mlp (expand 2|4), kan
#: (rational|rbf basis) or attention (1|2 heads)
SPACE = """
model digits(x: [64]) -> [10] {
  let width = choice(16, 32, 64, 128)
  h = reshape(x, [8, 8])                  # 8 tokens (image rows) of 8 pixels
  h = linear(h, width)
  repeat choice(1, 2, 3) as i {
    h = h + choice(
      mlp: mlp(layernorm(h), expand = choice(2, 4)),
      kan: kan(layernorm(h), width, basis = choice(rational, rbf)),
      attention: attention(layernorm(h), heads = choice(1, 2))
    )
  }
  return linear(flatten(layernorm(h)), 10)
}
train { data = digits  epochs = 20  batch = 64  optimizer = adamw(lr = 0.001)  schedule = cosine }
"""


@dataclasses.dataclass
class Settings:
    candidates: int
    seeds: int
    rows: int
    epochs: int
    budgets: tuple[int, ...]
    supernet_seeds: int
    supernet_lr: float | None
    bn_batches: int
    samplers: tuple[str, ...]


@dataclasses.dataclass
class Oneshot:
    """One supernet: its candidates' inherited scores and the CPU seconds of each phase."""

    acc: list[float]
    loss: list[float]
    build_cpu: float
    train_cpu: float   # supernet epochs, the per-epoch monitor included
    monitor_cpu: float  # of which: the fixed paths train_supernet scores after each epoch
    score_cpu: float
    epochs: int
    last_loss: float

    @property
    def cpu(self) -> float:
        return self.build_cpu + self.train_cpu + self.score_cpu


class Timed:
    """Wraps a function to add up the CPU seconds spent inside it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.cpu = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.cpu += time.process_time() - t0


def small_digits(rows: int) -> Dataset:
    """Digits with only ``rows`` training rows (a fixed random subset); the validation and
    test splits as bundled (288 and 359 rows), the same for every candidate."""
    data = load_data("digits")
    keep = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))[:rows]
    return dataclasses.replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])


def stratified(spec: Any, n: int) -> list[tuple[int, dict[str, Any]]]:
    """``n`` valid candidates evenly spaced in the space's order by parameter count."""
    sized = []
    for choices in spec.space().enumerate():
        try:
            sized.append((spec.build(choices).params, choices))
        except autoarch.SpecError:
            continue  # not a valid candidate
    sized.sort(key=lambda pc: pc[0])
    if n >= len(sized):
        return sized
    picks = sorted({round(i * (len(sized) - 1) / (n - 1)) for i in range(n)})
    return [sized[i] for i in picks]


def warm_up(spec: Any, data: Dataset, cfg: dict[str, Any]) -> None:
    """Pay the one-time costs before anything is timed: imports, the first lowering, and
    torch.compile of the rational kernel (used on CPU from 65,536 elements on, static
    then dynamic shapes: seconds once per process, which whichever side met it first
    would otherwise be charged)."""
    few = dataclasses.replace(data, x_train=data.x_train[:128], y_train=data.y_train[:128])
    for width in (32, 64, 128):
        choices = {"digits.width": width, "digits.i": 1, "digits.i[0].h": "kan",
                   "digits.i[0].h.kan.basis": "rational"}
        trainer.train(autoarch.compile(spec, choices, seed=0), few, cfg, epochs=1)


def standalone(spec: Any, cands: list[tuple[int, dict[str, Any]]], data: Dataset,
               cfg: dict[str, Any], s: Settings) -> tuple[list[list[float]], list[float]]:
    """Each candidate trained from scratch with each seed: accuracies [candidate][seed],
    and the CPU seconds of each seed's pass over all candidates."""
    accs: list[list[float]] = []
    cpu = [0.0] * s.seeds
    shown = time.perf_counter()
    for k, (_, choices) in enumerate(cands):
        row = []
        for seed in range(s.seeds):
            t0 = time.process_time()
            model = autoarch.compile(spec, choices, seed=seed)
            res = trainer.train(model, data, cfg, epochs=s.epochs, seed=seed)
            cpu[seed] += time.process_time() - t0
            row.append(res.metrics["val_accuracy"])
        accs.append(row)
        if time.perf_counter() - shown > 60 or k + 1 == len(cands):
            shown = time.perf_counter()
            print(f"    {k + 1}/{len(cands)} candidates trained ({sum(cpu):.0f} CPU s)",
                  flush=True)
    return accs, cpu


def fair_m(spec: Any) -> int:
    """The paths per step of the fair sampler: the most alternatives of any decision."""
    return max(len(d.values()) for d in spec.space().decisions if not d.continuous)


def oneshot(spec: Any, cands: list[tuple[int, dict[str, Any]]], data: Dataset,
            cfg: dict[str, Any], sampler: str, epochs: int, seed: int,
            s: Settings) -> Oneshot:
    """A supernet trained with ``sampler`` for ``epochs``, every candidate scored on it."""
    monitor = Timed(supernet_mod._monitor)
    supernet_mod._monitor = monitor  # measure it; train_supernet calls it after each epoch
    try:
        t0 = time.process_time()
        net = Supernet(spec, seed=seed)
        t1 = time.process_time()
        history = supernet_mod.train_supernet(net, data, epochs=epochs, path_sampler=sampler,
                                              config=cfg, seed=seed)
        t2 = time.process_time()
    finally:
        supernet_mod._monitor = monitor.fn
    scores = [supernet_mod.score_candidate(net, c, data, config=cfg, seed=0,
                                           bn_batches=s.bn_batches) for _, c in cands]
    t3 = time.process_time()
    return Oneshot([sc["val_accuracy"] for sc in scores], [sc["val_loss"] for sc in scores],
                   t1 - t0, t2 - t1, monitor.cpu, t3 - t2, epochs, history[-1].train_loss)


def tau(a: Sequence[float], b: Sequence[float]) -> float:
    return float(stats.kendalltau(a, b).statistic)


def rho(a: Sequence[float], b: Sequence[float]) -> float:
    return float(stats.spearmanr(a, b).statistic)


def within(groups: list[Any], a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall tau inside each group (here: each width), averaged over the groups."""
    out = []
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        if len(idx) > 2:
            out.append(tau([a[i] for i in idx], [b[i] for i in idx]))
    return statistics.mean(out) if out else float("nan")


def mean_of(values: Sequence[float], groups: list[Any], group: Any) -> float:
    return statistics.mean(v for v, g in zip(values, groups, strict=True) if g == group)


def run(s: Settings) -> None:
    torch.manual_seed(0)
    spec = autoarch.loads(SPACE)
    data = small_digits(s.rows)
    cfg = supernet_mod.supernet_config(spec)
    sn_cfg = dict(cfg)
    if s.supernet_lr is not None:
        _, opt = trainer.optimizer_settings(cfg["optimizer"])
        sn_cfg["optimizer"] = SymbolCall("adamw", (), (("lr", s.supernet_lr),
                                                       ("weight_decay", opt["weight_decay"])))
    cands = stratified(spec, s.candidates)
    params = [p for p, _ in cands]
    widths = [c["digits.width"] for _, c in cands]
    m = fair_m(spec)
    print(f"space: {spec.space().count()} candidates (widths 16-128, depth 1-3, per block "
          f"mlp / kan / attention); digits, {len(data.x_train)} training rows, "
          f"{len(data.x_val)} validation rows")
    print(f"{len(cands)} candidates stratified by size ({min(params)}..{max(params)} params); "
          f"stand-alone: {s.epochs} epochs x {s.seeds} seed(s), adamw lr "
          f"{trainer.base_lr(cfg['optimizer'])}, batch {cfg['batch']}, cosine; supernet: lr "
          f"{trainer.base_lr(sn_cfg['optimizer'])}, epochs {'/'.join(map(str, s.budgets))} "
          f"(fair: / {m}, as it trains {m} paths per step), {s.supernet_seeds} seed(s) each; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    t0 = time.process_time()
    warm_up(spec, data, cfg)
    print(f"warm-up (not counted): {time.process_time() - t0:.1f} CPU s")

    print("\n(1) stand-alone training", flush=True)
    accs, sa_cpu = standalone(spec, cands, data, cfg, s)
    truth = [statistics.mean(r) for r in accs]
    sa_once = statistics.mean(sa_cpu)
    print(f"    mean val accuracy: min {min(truth):.3f}, median {statistics.median(truth):.3f}, "
          f"max {max(truth):.3f}; {sa_once:.1f} CPU s per pass over the candidates "
          f"({sa_once / len(cands):.2f} per candidate), {sum(sa_cpu):.1f} for all seeds")
    pairs = list(itertools.combinations(range(s.seeds), 2))
    ceiling = statistics.mean(tau([r[i] for r in accs], [r[j] for r in accs])
                              for i, j in pairs) if pairs else float("nan")
    ceiling_w = statistics.mean(within(widths, [r[i] for r in accs], [r[j] for r in accs])
                                for i, j in pairs) if pairs else float("nan")
    # one seed against the mean of the others: the ceiling for one ranking against truth
    loo = statistics.mean(tau([r[i] for r in accs],
                              [statistics.mean(r[:i] + r[i + 1:]) for r in accs])
                          for i in range(s.seeds)) if pairs else float("nan")
    param_tau = tau(params, truth)

    results: dict[tuple[str, int], list[Oneshot]] = {}
    for sampler in s.samplers:
        for budget in s.budgets:
            epochs = max(1, round(budget / m)) if sampler == "fair" else budget
            for seed in range(s.supernet_seeds):
                r = oneshot(spec, cands, data, sn_cfg, sampler, epochs, seed, s)
                results.setdefault((sampler, budget), []).append(r)
                print(f"\n(2) supernet {sampler}, {epochs} epochs, seed {seed}: train loss "
                      f"{r.last_loss:.3f}; tau {tau(r.acc, truth):.3f}; CPU s: build "
                      f"{r.build_cpu:.1f}, train {r.train_cpu:.1f} (monitor "
                      f"{r.monitor_cpu:.1f}), score {r.score_cpu:.1f}", flush=True)
                by_width = "  ".join(
                    f"{w}: {mean_of(r.acc, widths, w):.3f} ({mean_of(truth, widths, w):.3f})"
                    for w in sorted(set(widths)))
                print(f"    mean val acc by width, inherited (stand-alone): {by_width}")

    print(f"\n(3) ranking of {len(cands)} candidates against their stand-alone val accuracy "
          f"(mean of {s.seeds} seed(s)); supernet rows: mean over {s.supernet_seeds} "
          "supernet seed(s)")
    head = (f"    {'ranking by':<34} {'tau':>6} {'rho':>6} {'tau in':>7} {'CPU s':>7} "
            f"{'vs stand-':>9} {'without':>8}")
    print(head)
    print(f"    {'':<34} {'':>6} {'':>6} {'width':>7} {'':>7} {'alone':>9} {'monitor':>8}")
    if pairs:
        print(f"    {'stand-alone, seed vs seed':<34} {ceiling:6.3f} {'':>6} {ceiling_w:7.3f} "
              f"{sa_once:7.1f} {1:9.3f}")
        print(f"    {'stand-alone, seed vs other seeds':<34} {loo:6.3f}")
    else:
        print(f"    {'stand-alone, seed vs seed':<34} {'n/a':>6} {'':>6} {'n/a':>7} "
              f"{sa_once:7.1f} {1:9.3f}")
    print(f"    {'parameter count':<34} {param_tau:6.3f} {rho(params, truth):6.3f} "
          f"{within(widths, params, truth):7.3f} {0:7.1f} {0:9.3f}")
    for (sampler, _), runs in results.items():
        cpu = statistics.mean(r.cpu for r in runs)
        bare = statistics.mean(r.cpu - r.monitor_cpu for r in runs)
        for what in ("acc", "loss"):
            sign = 1 if what == "acc" else -1
            scores = [[sign * x for x in getattr(r, what)] for r in runs]
            t = statistics.mean(tau(x, truth) for x in scores)
            rh = statistics.mean(rho(x, truth) for x in scores)
            w = statistics.mean(within(widths, x, truth) for x in scores)
            name = f"supernet {sampler} {runs[0].epochs} ep, val {what}"
            cost = (f" {cpu:7.1f} {cpu / sa_once:9.3f} {bare / sa_once:8.3f}"
                    if what == "acc" else "")
            print(f"    {name:<34} {t:6.3f} {rh:6.3f} {w:7.3f}{cost}")

    print("\n(4) targets (supernet val accuracy): tau >= parameter-count tau + 0.05 = "
          f"{param_tau + 0.05:.3f}; tau >= 0.7 x ceiling = "
          f"{0.7 * ceiling:.3f}; compute <= 0.1 x stand-alone (one seed)")
    for (sampler, _), runs in results.items():
        t = statistics.mean(tau(r.acc, truth) for r in runs)
        ratio = statistics.mean(r.cpu for r in runs) / sa_once
        checks = [("tau vs parameter count", t >= param_tau + 0.05),
                  ("tau vs ceiling", t >= 0.7 * ceiling if pairs else None),
                  ("compute", ratio <= 0.1)]
        print(f"    {sampler:>8} {runs[0].epochs:>3} ep (tau {t:.3f}, compute {ratio:.3f}): "
              + "; ".join(f"{txt} {'met' if ok else 'n/a' if ok is None else 'NOT met'}"
                          for txt, ok in checks))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="12 candidates, 1 seed, uniform, one budget (smoke run)")
    ap.add_argument("--candidates", type=int, default=None, help="default 50 (quick: 12)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="stand-alone seeds (default 3, quick 1)")
    ap.add_argument("--rows", type=int, default=300, help="digits training rows")
    ap.add_argument("--epochs", type=int, default=20, help="stand-alone epochs")
    ap.add_argument("--supernet-epochs", default=None,
                    help="comma-separated budgets in supernet epochs of uniform and pada; fair "
                         "gets them divided by its paths per step (default 24,48; quick 24)")
    ap.add_argument("--supernet-seeds", type=int, default=None,
                    help="supernets trained per sampler and budget (default 2, quick 1)")
    ap.add_argument("--supernet-lr", type=float, default=None,
                    help="AdamW lr of the supernet (default: the spec's, 0.001)")
    ap.add_argument("--bn-batches", type=int, default=8,
                    help="BatchNorm recalibration batches when scoring (the space has none)")
    ap.add_argument("--samplers", default=None,
                    help="comma-separated (default uniform,fair,pada; quick uniform)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    samplers = tuple(args.samplers.split(",")) if args.samplers else (
        ("uniform",) if args.quick else tuple(SAMPLERS))
    budgets = args.supernet_epochs or ("24" if args.quick else "24,48")
    s = Settings(candidates=args.candidates or (12 if args.quick else 50),
                 seeds=args.seeds or (1 if args.quick else 3), rows=args.rows,
                 epochs=args.epochs, budgets=tuple(int(b) for b in budgets.split(",")),
                 supernet_seeds=args.supernet_seeds or (1 if args.quick else 2),
                 supernet_lr=args.supernet_lr, bn_batches=args.bn_batches, samplers=samplers)
    t0 = time.perf_counter()
    run(s)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
