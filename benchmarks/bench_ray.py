"""Ray Tune backend: quickstart trials per minute with 1 and 2 workers, and the
backend's overhead per trial against the local one, measured in the same run.

Each configuration searches the same quickstart space with the same seed and
strategy (grid: the same candidates in the same order, whatever the backend), one
epoch per trial, into its own fresh database. Ray is started once, before the
timings (its start-up is printed apart); ``reuse_actors`` keeps a worker process
from one trial to the next within a search.

Overhead is what a search spends outside training, on each backend. Locally: wall
time minus the time inside ``train_candidate`` (lowering and training), as
bench_search measures it. On Tune, with one worker (trials one after another): wall
time minus each trial's ``worker_s`` (the seconds its trial function ran in the
worker: building, lowering, training, checkpointing), so that a worker's first
compile of a kernel, which a warm local process has already paid, counts on
neither side. From two search sizes, ``N1`` and ``N2`` trials, the Tune overhead
splits into a cost per trial (scheduling, shipping the trial, reporting every
epoch, the history written from the callback; target < 0.5 s) and a fixed cost per
search (a new Tuner, a worker process that imports torch and autoarch).

Run: ``python benchmarks/bench_ray.py [--trials 16] [--epochs 1]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import autoarch

ROOT = Path(__file__).resolve().parent.parent


class Inside:
    """Adds up the time the local backend spends in ``train_candidate``."""

    def __init__(self) -> None:
        import autoarch.search.evaluate as evaluate

        self.module, self.real, self.total = evaluate, evaluate.train_candidate, 0.0
        evaluate.train_candidate = self

    def __call__(self, *args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return self.real(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - t0


def timed_search(spec: autoarch.Spec, db: Path, trials: int, epochs: int,
                 **kw: object) -> tuple[float, float]:
    """Wall seconds of a search, and the seconds of it spent outside training."""
    inside = Inside()
    t0 = time.perf_counter()
    try:
        result = autoarch.search(spec, strategy="grid", trials=trials, epochs=epochs, db=db,
                                 seed=0, **kw)
    finally:
        inside.module.train_candidate = inside.real
    wall = time.perf_counter() - t0
    assert result.counted == trials, (result.counted, trials)
    if kw.get("backend") == "ray":
        worker = sum(o.metrics.get("worker_s", 0.0) for o in result.outcomes
                     if o.duplicate_of is None and o.state == "complete")
        return wall, wall - worker
    return wall, wall - inside.total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16, help="N2 (N1 is a quarter of it)")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    import ray

    n2 = args.trials
    n1 = max(1, n2 // 4)
    spec = autoarch.load(ROOT / "examples" / "quickstart.spec")
    with tempfile.TemporaryDirectory(prefix="bench-ray-", dir="/tmp") as tmp:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="warning", _temp_dir=str(Path(tmp) / "ray"))
        startup = time.perf_counter() - t0

        def run(n: int, **kw: object) -> float:
            name = "-".join(f"{k}{v}" for k, v in kw.items()) or "local"
            return timed_search(spec, Path(tmp) / f"{name}-{n}.db", n, args.epochs, **kw)

        try:
            run(n2)  # warm-up: imports, the data set, every candidate's first compile here
            local = {n: run(n) for n in (n1, n2)}
            one = {n: run(n, backend="ray", workers=1) for n in (n1, n2)}
            two = run(n2, backend="ray", workers=2)
        finally:
            ray.shutdown()
    local_per = local[n2][1] / n2
    per_trial = (one[n2][1] - one[n1][1]) / (n2 - n1)
    fixed = one[n1][1] - n1 * per_trial
    print(f"quickstart, grid, {args.epochs} epoch(s) per trial, 2-core machine "
          f"(Ray start-up {startup:.1f} s, not counted)")
    for label, wall in ((f"local backend, {n2} trials", local[n2][0]),
                        (f"ray, 1 worker, {n2} trials", one[n2][0]),
                        (f"ray, 2 workers, {n2} trials", two[0])):
        print(f"    {label:<28} {wall:6.1f} s   {60 * n2 / wall:6.1f} trials/min")
    print(f"    2 workers over 1: {one[n2][0] / two[0]:.2f}x")
    print(f"    overhead outside training: local {local_per:.3f} s per trial; Tune "
          f"{per_trial:.3f} s per trial (target < 0.5 s: "
          f"{'met' if per_trial < 0.5 else 'NOT met'}) + {fixed:.1f} s per search "
          f"(a Tuner, a worker process)")
    print(f"    Tune over local, per trial: {per_trial - local_per:+.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
