"""Building a tabular benchmark: ``autoarch tabulate`` (see :mod:`.tables` and
docs/tables.md).

:func:`tabulate` trains every candidate of a small discrete space once per training
seed into a table: one grid run per seed, named ``tabulate-seed-<s>``, resumable
after a kill, on Ray with ``backend = ray``; a space of more than ``limit``
trainings is refused with its size and the estimated CPU time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .history import History
from .tables import RUN_PREFIX, Table, TableError

#: at most this many trainings (candidates x seeds) unless ``limit`` says more
DEFAULT_LIMIT = 20_000


@dataclass
class TabulateResult:
    """What :func:`tabulate` did: the table's file, its size, and each seed's run."""

    db: Path
    candidates: int
    seeds: list[int]
    runs: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        seeds = f"{len(self.seeds)} seed" + ("s" if len(self.seeds) != 1 else "")
        return (f"table {self.db}: {self.candidates} candidates x {seeds} "
                f"(seeds {', '.join(map(str, self.seeds))})")


def space_size(spec: Any) -> int:
    """The number of candidates of a discrete space; a TableError for a continuous one."""
    space = spec.space()
    if space.continuous:
        d = space.continuous[0]
        raise TableError(f"tabulate needs a discrete space; decision {d.name} is continuous",
                         hint="give float() a step or use choice(...)")
    n = space.count()
    assert n is not None
    return n


def estimate_seconds(spec: Any, cfg: Mapping[str, Any], data: Any, samples: int = 12) -> float:
    """A rough CPU time of one training: mean FLOPs of a few sampled candidates times
    the examples seen (3x for a training step, 1x for validation), at the rate this
    machine multiplies matrices, plus a per-step overhead."""
    import torch

    space = spec.space()
    flops = []
    for i in range(samples):
        try:
            flops.append(spec.build(space.sample(seed=i)).flops)
        except Exception:  # noqa: BLE001 - an invalid sample says nothing about time
            continue
    mean_flops = statistics.fmean(flops) if flops else 1e6
    a = torch.randn(256, 256)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        a @ a
        n += 1
    rate = n * 2 * 256**3 / (time.perf_counter() - start)
    n_train, n_val = _sizes(data)
    steps = math.ceil(n_train / int(cfg["batch"]))
    per_epoch = (3 * n_train + n_val) * mean_flops / rate + steps * 2e-3
    return int(cfg["epochs"]) * per_epoch


def _sizes(data: Any) -> tuple[int, int]:
    try:
        return len(data.y_train), len(data.y_val)
    except Exception:  # noqa: BLE001 - torch datasets without a length: a guess
        return 10_000, 2_000


def tabulate(spec: Any, *, seeds: int | list[int] = 3, db: str | Path = "table.db",
             epochs: int | None = None, data: Any = None, backend: str | None = None,
             workers: int | None = None, limit: int = DEFAULT_LIMIT,
             reporter: Any = None) -> TabulateResult:
    """Train every candidate of ``spec``'s space once per seed into the table ``db``.

    ``seeds`` is a count (seeds 0..S-1) or a list of training seeds. ``epochs`` and
    ``data`` replace the spec's `train` settings (as in a search). A space of more
    than ``limit`` trainings (candidates x seeds) is refused with its size and the
    estimated CPU time. Running it again resumes: each seed's run continues where it
    stopped, nothing trained twice; the settings must be the same.

    Raises:
        TableError: a continuous space, a space too large, bad seeds.
        SpecError: a mistake in the spec or the arguments.
    """
    from .driver import Driver, Reporter
    from .engine import run
    from .options import options_of, overrides_of

    seed_list = _seed_list(seeds)
    n = space_size(spec)
    trainings = n * len(seed_list)
    base = overrides_of(epochs, data)
    if trainings > limit:
        from .evaluate import trial_config
        from .run_setup import _data

        probe_cfg = trial_config(spec.build(spec.space().sample(seed=0)), base)
        guess = estimate_seconds(spec, probe_cfg, _data(probe_cfg, _base_dir(spec),
                                                         lambda _: None))
        raise TableError(
            f"the space has {n:,} candidates x {len(seed_list)} seeds = {trainings:,} "
            f"trainings, about {_hours(guess * trainings)} of CPU time at ~{guess:.2g} s each; "
            f"tabulate trains at most {limit:,}",
            hint="narrow the space (fewer choices), use fewer --seeds or --epochs, or raise "
                 "--limit")
    if Path(db).exists() and Path(db).stat().st_size:
        _check_existing(spec, Path(db), base)
    out = TabulateResult(Path(db), n, seed_list)
    for s in seed_list:
        overrides = type(base)(epochs=base.epochs, data=base.data, seed=s)
        opts = options_of(spec, strategy="grid", trials=n, seed=0, timeout=None,
                          pruner="none", backend=backend, workers=workers,
                          cpus_per_trial=None, gpus_per_trial=None, supernet_epochs=None,
                          path_sampler=None, evaluate=None, retrain=None, then=None,
                          objective=None, overrides=overrides)
        rep = reporter or Reporter()
        rep.note(f"seed {s}: {n} candidates")
        out.runs.append(run(Driver(spec, opts, Path(db), f"{RUN_PREFIX}{s}", rep)))
    return out


def _check_existing(spec: Any, db: Path, overrides: Any) -> None:
    """Adding to a table: it must be one, built from this spec with these settings."""
    from .evaluate import trial_config
    from .history import HistoryError

    try:
        table = Table(db)
    except TableError:
        h = History(db, create=False, readonly=True)  # (a HistoryError if not ours)
        empty = not h.runs()
        h.close()
        if empty:
            return
        raise TableError(f"{db} is a history database with runs of its own, not a table",
                         hint="give tabulate another -o") from None
    except HistoryError as e:
        raise TableError(e.message, hint="give tabulate another -o") from None
    if table.spec_text != spec.source:
        raise TableError(f"the table {db} was built from another spec ({table.spec_name}); "
                         "a table holds one space", hint="give tabulate another -o")
    try:
        table.replay().check(trial_config(spec.build(spec.space().sample(seed=0)), overrides))
    except TableError as e:
        raise TableError(e.message.replace("this search trains", "this tabulate trains"),
                         hint="tabulate with the table's settings, or give another -o"
                         ) from None


def _seed_list(seeds: int | list[int]) -> list[int]:
    if isinstance(seeds, bool) or not isinstance(seeds, int | list | tuple):
        raise TableError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise TableError(f"--seeds must be at least 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise TableError(f"seeds must be distinct non-negative numbers, got {list(seeds)}")
    return out


def _base_dir(spec: Any) -> Path:
    return Path(spec.filename).parent if spec.filename else Path(".")


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


