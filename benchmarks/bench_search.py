"""Search benchmark: framework overhead per trial, and search efficiency.

(a) Overhead per trial, excluding training: wall time of ``autoarch.search`` per
    trial minus the time spent inside the trainer, on the quickstart space with a
    one-step "training" (goal: at most 20 ms). The baseline, measured in the same
    run, is a bare Optuna ask/tell loop that samples the same space through the
    same decider and calls the same trainer, with no checks and no history.
(b) Efficiency on a digits MLP space with short training: best validation accuracy
    after 25 trials of tpe, mcts and evolution against random after 50, over seeds.

Run: ``python benchmarks/bench_search.py [--seeds 3] [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

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


class Timed:
    """Wraps the trainer to add up the time spent inside it."""

    def __init__(self) -> None:
        self.inside = 0.0
        self.real = trainer_mod.train

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        t0 = time.perf_counter()
        try:
            return self.real(*args, **kwargs)
        finally:
            self.inside += time.perf_counter() - t0


def overhead(trials: int) -> None:
    spec = autoarch.load(ROOT / "examples" / "quickstart.spec")
    timed = Timed()
    trainer_mod.train = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up: imports, data set cache, first lowering
            autoarch.search(spec, trials=2, epochs=1, db=Path(tmp) / "warm.db")
            timed.inside = 0.0
            t0 = time.perf_counter()
            res = autoarch.search(spec, trials=trials, epochs=1, db=Path(tmp) / "a.db", seed=1)
            total = time.perf_counter() - t0
            proposals = len(res.outcomes)
            ours = (total - timed.inside) / proposals
            # baseline: bare optuna loop, same decider, same trainer, no checks, no history
            from autoarch.backends.torch import lower_graph
            from autoarch.search.data import load_data
            from autoarch.search.evaluate import trial_config

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.create_study(direction="maximize",
                                        sampler=optuna.samplers.RandomSampler(seed=1))
            timed.inside = 0.0
            t0 = time.perf_counter()
            for _ in range(proposals):
                trial = study.ask()
                graph = spec.build_with(OptunaDecider(trial))
                cfg = trial_config(graph)
                data = load_data(cfg["data"], val_split=cfg["val_split"])
                model = lower_graph(graph, seed=0)
                result = trainer_mod.train(model, data, cfg, epochs=1)
                study.tell(trial, result.metrics["val_accuracy"])
            base_total = time.perf_counter() - t0
            base = (base_total - timed.inside) / proposals
    finally:
        trainer_mod.train = timed.real
    print(f"(a) framework overhead per trial, excluding training ({proposals} proposals, "
          f"quickstart, 1 epoch)")
    print(f"    autoarch.search (checks, hashing, dedup, SQLite, Optuna journal): "
          f"{ours * 1e3:7.1f} ms   goal <= 20 ms: {'met' if ours <= 0.020 else 'NOT met'}")
    print(f"    baseline: bare in-memory Optuna loop, same decider and lowering: "
          f"{base * 1e3:7.1f} ms   ratio {ours / base:.2f}x")


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
    args = ap.parse_args()
    overhead(10 if args.quick else 40)
    if args.quick:
        efficiency(1, 4, 8)
    else:
        efficiency(args.seeds, 25, 50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
