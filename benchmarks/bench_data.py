"""Loading a large csv file: time and peak memory against numpy.loadtxt of the same file.

Writes a csv file of about ``--mb`` megabytes into a temporary folder (``--features``
float columns with 7 significant digits and an integer label of 10 classes), then,
each in a fresh process so that peak memory is the process's own:

- ``load_data``: ``autoarch.search.data.load_data(csv(path, target = "y"))``, the
  whole path a search takes (parse and check every row, split, standardize, make
  tensors), with a progress callback that counts its calls;
- ``baseline``: ``numpy.loadtxt(path, delimiter=",", skiprows=1)``, which only
  parses the numbers into one float64 array. Measured here, in the same run.

Peak memory is the process's maximum resident set size (``ru_maxrss``) less its
size just before loading (after the imports). Run:
``python benchmarks/bench_data.py [--mb 50] [--features 20] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
import numpy as np
from autoarch.compiler.values import SymbolCall
from autoarch.search.data import load_data

path, which = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
calls = []
start = time.perf_counter()
if which == "load_data":
    d = load_data(SymbolCall("csv", (path,), (("target", "y"),)),
                  progress=lambda done, total: calls.append((time.perf_counter(), done, total)))
    rows = len(d.x_train) + len(d.x_val) + len(d.x_test)
else:
    rows = len(np.loadtxt(path, delimiter=",", skiprows=1))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
periodic = calls[:-1]  # the last call, (total, total), comes when reading ends
gaps = [b[0] - a[0] for a, b in zip(periodic, periodic[1:])]
print(json.dumps({"seconds": seconds, "peak_mb": (peak - before) / 1024, "rows": rows,
                  "progress_calls": len(calls), "min_gap_s": min(gaps) if gaps else None,
                  "last": calls[-1][1:] if calls else None}))
"""


def write_csv(path: Path, megabytes: float, features: int) -> tuple[int, int]:
    """A csv of about ``megabytes`` MB: float features and a label ``y`` of 10 classes."""
    import numpy as np

    rng = np.random.default_rng(0)
    target = megabytes * 1e6
    rows = 0
    with open(path, "w", newline="") as f:
        f.write(",".join([f"f{j}" for j in range(features)] + ["y"]) + "\n")
        while f.tell() < target:
            x = rng.normal(size=(20_000, features)) * rng.uniform(0.1, 100, size=features)
            y = rng.integers(0, 10, size=(20_000, 1))
            np.savetxt(f, np.hstack([x, y]), fmt=["%.7g"] * features + ["%d"], delimiter=",")
            rows += 20_000
    return rows, path.stat().st_size


def measure(path: Path, which: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), which], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=50.0, help="size of the csv file (MB)")
    ap.add_argument("--features", type=int, default=20, help="feature columns")
    ap.add_argument("--keep", action="store_true", help="print the file's path, keep it")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_data_"))
    path = folder / "big.csv"
    start = time.perf_counter()
    rows, size = write_csv(path, args.mb, args.features)
    print(f"wrote {path.name}: {size / 1e6:.0f} MB, {rows:,} rows of {args.features} features "
          f"+ a label ({time.perf_counter() - start:.1f} s)")
    try:
        ours = measure(path, "load_data")
        base = measure(path, "baseline")
        assert ours["rows"] == base["rows"] == rows, (ours, base, rows)
        print(f"{'':<12}{'seconds':>10}{'MB/s':>10}{'peak MB':>10}{'peak / file':>13}")
        for name, r in (("load_data", ours), ("loadtxt", base)):
            print(f"{name:<12}{r['seconds']:>10.2f}{size / 1e6 / r['seconds']:>10.1f}"
                  f"{r['peak_mb']:>10.0f}{r['peak_mb'] * 1e6 / 2**20 / (size / 2**20):>13.2f}")
        print(f"ratio load_data / loadtxt: time {ours['seconds'] / base['seconds']:.2f}, "
              f"peak memory {ours['peak_mb'] / max(base['peak_mb'], 1):.2f}")
        gap = ours["min_gap_s"]
        print(f"progress: {ours['progress_calls']} calls"
              + (f", at least {gap:.2f} s apart (the final one aside)" if gap is not None
                 else "")
              + (f", last {ours['last'][0]:,} / {ours['last'][1]:,} bytes" if ours["last"]
                 else ""))
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            path.unlink()
            folder.rmdir()


if __name__ == "__main__":
    main()
