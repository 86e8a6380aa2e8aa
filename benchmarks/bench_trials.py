"""End-to-end trial time of every block family, as a ratio to an MLP trial.

One candidate per family: the quickstart's shape (8 tokens of 8 digits pixels,
width 32, two residual blocks of the family, a linear head), trained on digits
for ``--epochs`` epochs by ``autoarch.search`` with one trial. Each family is
timed twice:

- **cold**: ``autoarch search`` in a fresh process (imports, data, lowering, any
  compile: what the first trial of a search costs), wall time of the process;
- **warm**: the same trial again in one long-lived process, after one warm-up
  trial of another family (what a trial costs in the middle of a search).

Each time is printed with its ratio to the MLP trial measured in the same run, and
so are two epoch times read back from the run's history: the cold process's first
epoch (where a compile per shape would show) and the warm trial's steady epoch
(median of epochs 2..). Goals from issue 15: a rational-KAN trial at most 1.5x the
MLP end to end, its steady epoch at most 2x.

Run: ``python benchmarks/bench_trials.py [--epochs 5] [--only mlp,kan_rational]``
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAMILIES = {
    "mlp": "mlp(layernorm(h), expand = 2)",
    "glu": "glu(layernorm(h), hidden = 64)",
    "mixer": "mixer(layernorm(h), hidden = 16)",
    "moe": "moe(layernorm(h), experts = 4, top_k = 2, hidden = 32)",
    "kan_rational": "kan(layernorm(h), 32, basis = rational)",
    "kan_bspline": "kan(layernorm(h), 32, basis = bspline)",
    "kan_rbf": "kan(layernorm(h), 32, basis = rbf)",
    "kan_relu": "kan(layernorm(h), 32, basis = relu)",
    "attention_softmax": "attention(layernorm(h), heads = 2, kind = softmax)",
    "attention_linear": "attention(layernorm(h), heads = 2, kind = linear)",
    "attention_gla": "attention(layernorm(h), heads = 2, kind = gla)",
    "attention_hedgehog": "attention(layernorm(h), heads = 2, kind = hedgehog)",
}

SPEC = """model m(x: [64]) -> [10] {
  h = linear(reshape(x, [8, 8]), 32)
  repeat 2 { h = h + BLOCK }
  return linear(flatten(layernorm(h)), 10)
}
train { data = digits  epochs = EPOCHS }
search { strategy = random  trials = 1 }
"""


def write_spec(folder: Path, family: str, epochs: int) -> Path:
    path = folder / f"{family}.spec"
    path.write_text(SPEC.replace("BLOCK", FAMILIES[family]).replace("EPOCHS", str(epochs)))
    return path


def epoch_times(db: Path) -> list[float]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT wall_s FROM epochs ORDER BY epoch")]


def cold(folder: Path, family: str, epochs: int) -> tuple[float, float]:
    spec = write_spec(folder, family, epochs)
    db = folder / f"cold-{family}.db"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autoarch", "search", str(spec), "--db",
                           str(db)], capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{family}: autoarch search failed:\n{proc.stderr}")
    return took, epoch_times(db)[0]


def warm(folder: Path, family: str, epochs: int) -> tuple[float, float]:
    import autoarch

    spec = autoarch.load(write_spec(folder, family, epochs))
    db = folder / f"warm-{family}-{time.monotonic_ns()}.db"
    start = time.perf_counter()
    autoarch.search(spec, db=db)
    took = time.perf_counter() - start
    return took, statistics.median(epoch_times(db)[1:] or epoch_times(db))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated families (mlp always)")
    args = ap.parse_args()
    names = list(FAMILIES) if args.only is None else ["mlp"] + [
        n for n in args.only.split(",") if n != "mlp"]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise SystemExit(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        times = {n: cold(folder, n, args.epochs) for n in names}
        warm(folder, "glu", 1)  # imports, data and first-use costs paid before timing
        warm_times = {n: warm(folder, n, args.epochs) for n in names}
    print(f"trial time on digits, {args.epochs} epochs, width 32, 2 blocks "
          "(ratio to the mlp trial of this run)")
    print(f"{'family':20} {'cold s':>7} {'ratio':>6} {'1st ep s':>8} {'ratio':>6} "
          f"{'warm s':>7} {'ratio':>6} {'epoch s':>8} {'ratio':>6}")
    for n in names:
        row = [*times[n], *warm_times[n]]
        mlp = [*times["mlp"], *warm_times["mlp"]]
        print(f"{n:20} " + " ".join(f"{v:{7 if i % 2 == 0 else 8}.3f} {v / b:6.2f}"
                                    for i, (v, b) in enumerate(zip(row, mlp, strict=True))))
    if "kan_rational" in names:
        trial = max(times["kan_rational"][0] / times["mlp"][0],
                    warm_times["kan_rational"][0] / warm_times["mlp"][0])
        epoch = warm_times["kan_rational"][1] / warm_times["mlp"][1]
        print(f"rational KAN / MLP: trial {trial:.2f}x ({'meets' if trial <= 1.5 else 'MISSES'}"
              f" the <= 1.5x goal), steady epoch {epoch:.2f}x "
              f"({'meets' if epoch <= 2 else 'MISSES'} the <= 2x goal)")

if __name__ == "__main__":
    main()
