"""Search benchmark: framework overhead per trial, and search efficiency.

(a) Overhead per trial, excluding training: the time ``autoarch.search`` spends per
    proposal in its loop (from the run's start, after its setup, to the end of its
    last trial) minus the time inside the trainer, on the quickstart space with a
    one-step "training"; the per-epoch callback (an ``epochs`` row, the study's
    curve) is counted as overhead, not training. The baseline, measured in the same
    run, is a bare Optuna ask/tell loop on an in-memory study that samples the same
    space through the same decider, lowers and calls the same trainer, with no
    checks, no history and no journal. The framework's own cost is the difference
    (goal: at most 2 ms per trial). What a run does once is printed apart: its
    setup (checks, database, journal) and its end (the run's row, the journal's
    last lines, the database's last checkpoint: two fsyncs), and the per-trial
    figure with that end spread over the run's trials too. Medians over a few
    repeats, wall clock and CPU time (the CPU time is steadier on a busy machine).
    Torch trains on one thread here: the training is not what is measured.
(b) Efficiency on a digits MLP space with short training: best validation accuracy
    after 25 trials of tpe, mcts and evolution against random after 50, over seeds.

Run: ``python benchmarks/bench_search.py [--seeds 3] [--quick] [--overhead-only]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

import autoarch
import autoarch.search.trainer as trainer_mod
from autoarch.compiler.deciders import OptunaDecider

ROOT = Path(__file__).resolve().parent.parent

MLP_SPACE = """
let lr = choice(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03)
model digits(x: [64]) -> [10] {
  h = x
  repeat choice(1, 2, 3) {
    h = act(linear(h, choice(16, 32, 64, 128)), choice(relu, gelu, tanh))
    h = optional(dropout(h, 0.1))
  }
  return linear(h, 10)
}
train { data = digits  epochs = 3  batch = 64  optimizer = adamw(lr = lr) }
search { strategy = random  trials = 25 }
"""


class Clock:
    """Wall clock and this process's CPU time, together."""

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()


class Timed:
    """Wraps the trainer to add up the time spent inside it (wall, CPU), less the time
    in the search's per-epoch callback, which is the framework's."""

    def __init__(self) -> None:
        self.inside = [0.0, 0.0]
        self.real = trainer_mod.train

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        callback = kwargs.get("on_epoch")
        if callback is not None:
            def on_epoch(ep):  # noqa: ANN001, ANN202
                c0 = Clock.now()
                try:
                    return callback(ep)
                finally:
                    c1 = Clock.now()
                    self.inside[0] -= c1[0] - c0[0]
                    self.inside[1] -= c1[1] - c0[1]

            kwargs["on_epoch"] = on_epoch
        t0 = Clock.now()
        try:
            return self.real(*args, **kwargs)
        finally:
            t1 = Clock.now()
            self.inside[0] += t1[0] - t0[0]
            self.inside[1] += t1[1] - t0[1]


class Started(autoarch.search.Reporter):
    """Notes when the run's loop starts (its setup done) and when its last trial ended."""

    def start(self, run: str, requested: int, counted: int, resumed: bool) -> None:
        self.at = Clock.now()

    def trial(self, outcome, counted: int, best) -> None:  # noqa: ANN001
        self.last = Clock.now()


def _ours(spec, trials: int, db: Path, timed: Timed) -> tuple[tuple[float, float], float,
                                                               float, int]:
    """One search: (wall, CPU) seconds per proposal outside training, its setup and its
    end (wall seconds), its proposals."""
    timed.inside = [0.0, 0.0]
    started = Started()
    t0 = Clock.now()
    res = autoarch.search(spec, trials=trials, epochs=1, db=db, seed=1, reporter=started)
    t1 = Clock.now()
    n = len(res.outcomes)
    return ((started.last[0] - started.at[0] - timed.inside[0]) / n,
            (started.last[1] - started.at[1] - timed.inside[1]) / n), \
        started.at[0] - t0[0], t1[0] - started.last[0], n


def _bare(spec, proposals: int, timed: Timed) -> tuple[float, float]:
    """The bare loop: (wall, CPU) seconds per proposal outside training."""
    from autoarch.backends.torch import lower_graph
    from autoarch.search.data import load_data
    from autoarch.search.evaluate import trial_config

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    timed.inside = [0.0, 0.0]
    t0 = Clock.now()
    for _ in range(proposals):
        trial = study.ask()
        graph = spec.build_with(OptunaDecider(trial))
        cfg = trial_config(graph)
        data = load_data(cfg["data"], val_split=cfg["val_split"])
        model = lower_graph(graph, seed=0)
        result = trainer_mod.train(model, data, cfg, epochs=1)
        study.tell(trial, result.metrics["val_accuracy"])
    t1 = Clock.now()
    return ((t1[0] - t0[0] - timed.inside[0]) / proposals,
            (t1[1] - t0[1] - timed.inside[1]) / proposals)


#: the goal for the framework's own time per trial (issue 16, item 6)
GOAL_S = 0.002


def overhead(trials: int, repeats: int) -> None:
    spec = autoarch.load(ROOT / "examples" / "quickstart.spec")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    timed = Timed()
    trainer_mod.train = timed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (training is not measured; one thread keeps it quick)
    ours, base, setup, end = [], [], [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up: imports, data set cache, first lowering
            autoarch.search(spec, trials=2, epochs=1, db=Path(tmp) / "warm.db")
            _bare(spec, 2, timed)
            for r in range(repeats):  # interleaved, so that a busy spell hits both
                per, s, e, proposals = _ours(spec, trials, Path(tmp) / f"a{r}.db", timed)
                ours.append(per)
                setup.append(s)
                end.append(e)
                base.append(_bare(spec, proposals, timed))
    finally:
        trainer_mod.train = timed.real
        torch.set_num_threads(threads)
    wall = [statistics.median(o[0] for o in ours), statistics.median(b[0] for b in base)]
    cpu = [statistics.median(o[1] for o in ours), statistics.median(b[1] for b in base)]
    fw = [wall[0] - wall[1], cpu[0] - cpu[1]]
    print(f"(a) time per trial outside training ({proposals} proposals, quickstart, "
          f"1 epoch; median of {repeats})")
    rows = [("", "wall ms", "CPU ms"),
            ("autoarch.search (checks, hashing, dedup, history, journal)", wall[0], cpu[0]),
            ("bare in-memory Optuna ask/tell, same decider and lowering", wall[1], cpu[1]),
            ("framework overhead (the difference)", fw[0], fw[1])]
    for label, w, c in rows:
        if isinstance(w, str):
            print(f"    {label:<60} {w:>8} {c:>8}")
        else:
            print(f"    {label:<60} {w * 1e3:8.2f} {c * 1e3:8.2f}")
    print(f"    ratio to the bare loop: {wall[0] / wall[1]:.2f}x wall, {cpu[0] / cpu[1]:.2f}x CPU")
    print(f"    goal: framework overhead <= {GOAL_S * 1e3:g} ms per trial: "
          f"{'met' if fw[0] <= GOAL_S else 'NOT met'} (wall), "
          f"{'met' if fw[1] <= GOAL_S else 'NOT met'} (CPU)")
    print(f"    once per run: its setup (checks, database, journal) "
          f"{statistics.median(setup) * 1e3:.0f} ms, its end (run row, journal, last "
          f"checkpoint) {statistics.median(end) * 1e3:.0f} ms")
    print(f"    framework overhead with the run's end spread over its {proposals} trials: "
          f"{(fw[0] + statistics.median(end) / proposals) * 1e3:.2f} ms wall")


def efficiency(seeds: int, budget: int, random_budget: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.spec"
        path.write_text(MLP_SPACE)
        spec = autoarch.load(path)
        print(f"\n(b) best validation accuracy, digits MLP space ({spec.space().count()} "
              f"candidates, 3 epochs each), {seeds} seeds")
        results: dict[str, list[float]] = {}
        plan = [("random", random_budget), ("tpe", budget), ("mcts", budget),
                ("evolution", budget)]
        for strategy, trials in plan:
            for seed in range(seeds):
                t0 = time.perf_counter()
                res = autoarch.search(spec, strategy=strategy, trials=trials, seed=seed,
                                      db=Path(tmp) / f"{strategy}-{seed}.db")
                results.setdefault(strategy, []).append(res.best[0]["objective"][0])
                distinct = sum(o.duplicate_of is None for o in res.outcomes
                               if o.state != "invalid")
                print(f"    {strategy:>9} seed {seed}: best {results[strategy][-1]:.4f} "
                      f"after {trials} trials, {distinct} distinct candidates "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        ref = statistics.mean(results["random"])
        print(f"\n    {'strategy':>9}  trials  mean best  min     vs random@{random_budget}")
        for strategy, trials in plan:
            vals = results[strategy]
            print(f"    {strategy:>9}  {trials:>6}  {statistics.mean(vals):.4f}     "
                  f"{min(vals):.4f}  {statistics.mean(vals) - ref:+.4f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer trials (smoke run)")
    ap.add_argument("--overhead-only", action="store_true", help="part (a) only")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of part (a)")
    args = ap.parse_args()
    overhead(10 if args.quick else 40, 2 if args.quick else args.repeats)
    if args.overhead_only:
        return 0
    if args.quick:
        efficiency(1, 4, 8)
    else:
        efficiency(args.seeds, 25, 50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
