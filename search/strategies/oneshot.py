"""One-shot search: train one supernet, score candidates on it, retrain the best.

The engine runs a one-shot run like any other (run setup, locks, resume, the
loop, the history); this strategy adds what comes before its loop
(:func:`prepare`, the hook a strategy module may define), and its sampler
(:func:`make_sampler`) proposes what the loop trains: the candidates
:func:`prepare` returned, enqueued first, then (should any trial end without a
result) draws of the ``then`` strategy.

1. **Supernet training**: ``supernet_epochs`` epochs (``search/supernet.py``),
   a checkpoint after each beside the history (``<db>.<run>.supernet.pt``) and a
   row of ``supernet_epochs``; a killed run resumes after its last saved epoch.
2. **Scoring**: the ``then`` strategy's Optuna sampler proposes candidates, with
   the run's objectives and the spec's constraints, until ``evaluate`` distinct
   candidates are scored with their inherited weights; each is a row of
   ``supernet_scores``, written before the sampler is told. On resume the rows
   are told to a new study again, in order, and scoring goes on from there.
3. **The best**: the ``retrain`` best scored candidates (Pareto fronts first
   for several objectives) are what :func:`prepare` returns; the engine
   enqueues them as the run's trials, trained stand-alone with the full
   `train` settings.

See docs/oneshot.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...compiler.spec import Spec, to_jsonable
from ...dsl.errors import CandidateError, SpecLimitError
from ..history import History, dumps, loads
from ..options import Objective, Options

#: proposals per requested score before scoring stops (the space may be smaller)
MAX_PROPOSALS_PER_SCORE = 20


def checkpoint_path(db: Path, run: str) -> Path:
    """Where a run's supernet is saved: beside its history."""
    return db.with_name(f"{db.name}.{run}.supernet.pt")


def make_sampler(spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    """The sampler of the retraining loop. The candidates :func:`prepare` chose are
    enqueued, so Optuna hands them out first; this random sampler only fills in
    should the loop ask for more."""
    from .random import make_sampler as random_sampler

    return random_sampler(spec, seed=seed, n_objectives=n_objectives, trials=trials)


def prepare(spec: Spec, opts: Options, history: History, run_id: int, run: str, db: Path,
            note: Callable[[str], None], deadline: float | None = None) -> list[dict[str, Any]]:
    """Train the supernet and score candidates (or resume doing so); the choices of
    the ``retrain`` best scored candidates, best first."""
    from ...backends.torch.supernet import Supernet
    from ..supernet import spec_data, supernet_config, train_supernet
    from ..trainer import DeadlineReached

    cfg = supernet_config(spec)
    if opts.overrides.data is not None:
        cfg["data"] = opts.overrides.data
    data = spec_data(spec, cfg)
    net = Supernet(spec, seed=opts.seed)
    ckpt = checkpoint_path(db, run)
    done = {r["epoch"] for r in history.supernet_epochs(run_id)}

    def on_epoch(e: Any) -> None:
        if e.epoch not in done:
            history.add_supernet_epoch(run_id, _epoch_row(e))
        acc = "" if e.val_accuracy is None else f", val_accuracy {e.val_accuracy:.3f}"
        note(f"supernet epoch {e.epoch}/{opts.supernet_epochs}: train_loss "
             f"{e.train_loss:.4f}, val_loss {e.val_loss:.4f}{acc} ({e.wall_s:.1f} s)")

    try:
        epochs = train_supernet(net, data, epochs=opts.supernet_epochs,
                                path_sampler=opts.path_sampler, config=cfg, seed=opts.seed,
                                checkpoint=ckpt, on_epoch=on_epoch, deadline=deadline)
    except DeadlineReached as e:  # the run stops at its timeout; a resume goes on
        note(f"timeout during supernet training ({e}); the epochs saved stay")
        return []
    for e in epochs:  # epochs saved before a kill that came before their row
        if e.epoch not in done and e.epoch not in {r["epoch"] for r in
                                                   history.supernet_epochs(run_id)}:
            history.add_supernet_epoch(run_id, _epoch_row(e))
    _score(spec, opts, history, run_id, net, data, cfg, note, deadline)
    return [loads(r["choices"]) for r in ranked(history.supernet_scores(run_id),
                                                opts.objectives)[:opts.retrain]]


def _epoch_row(e: Any) -> dict[str, Any]:
    return {"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss,
            "val_accuracy": e.val_accuracy, "lr": e.lr, "wall_s": e.wall_s, "paths": e.paths}


def _score(spec: Spec, opts: Options, history: History, run_id: int, net: Any, data: Any,
           cfg: Mapping[str, Any], note: Callable[[str], None],
           deadline: float | None) -> None:
    import optuna

    from ...compiler.deciders import OptunaDecider
    from ..supernet import score_candidate
    from . import make_sampler as strategy_sampler

    sampler = strategy_sampler(opts.then, spec, seed=opts.seed,
                                      n_objectives=len(opts.objectives), trials=opts.evaluate)
    study = optuna.create_study(sampler=sampler,
                                directions=[o.direction for o in opts.objectives])
    rows = history.supernet_scores(run_id)
    seen: dict[str, list[float] | None] = {}
    for r in rows:  # what was scored before a resume, told again in order
        study.enqueue_trial(loads(r["choices"]))
        trial = study.ask()
        spec.build_with(OptunaDecider(trial))
        _tell(study, trial, loads(r["objective"]), opts.objectives)
        seen[r["arch_hash"]] = loads(r["objective"])
    if rows:
        note(f"resumed scoring: {len(rows)} candidates scored before")
    proposals, last_note = 0, time.monotonic()
    size = spec.space().count()  # a small space ends scoring when all of it is scored
    want = opts.evaluate if size is None else min(opts.evaluate, size)
    while len(seen) < want and proposals < MAX_PROPOSALS_PER_SCORE * opts.evaluate:
        if deadline is not None and time.time() > deadline:
            break
        exhausted = getattr(sampler, "exhausted", None)
        if exhausted is not None and exhausted(study):
            break
        proposals += 1
        trial = study.ask()
        try:
            graph = spec.build_with(OptunaDecider(trial))
            spec.check_params(graph)  # too large to build: not scored
        except (CandidateError, SpecLimitError):
            _tell(study, trial, None, opts.objectives)
            continue
        arch = graph.hash
        if arch in seen:  # proposed again: the same score, not a new row
            _tell(study, trial, seen[arch], opts.objectives)
            continue
        violated = spec.violated_constraints(graph)
        if violated:
            _tell(study, trial, None, opts.objectives)
            continue
        metrics = score_candidate(net, graph.choices, data, config=cfg, seed=opts.seed)
        values = [float(metrics[o.metric]) for o in opts.objectives]
        with history.transaction():  # the candidate and its score: one commit
            history.add_candidate(graph, run_id)
            history.add_supernet_score(run_id, {
                "number": len(seen), "arch_hash": arch,
                "choices": dumps(to_jsonable(graph.choices)), "metrics": dumps(metrics),
                "objective": dumps(values), "params": graph.params, "flops": graph.flops})
        seen[arch] = values
        _tell(study, trial, values, opts.objectives)
        if time.monotonic() - last_note > 2.0 or len(seen) == want:
            note(f"scored {len(seen)}/{opts.evaluate} candidates on the supernet")
            last_note = time.monotonic()


def _tell(study: Any, trial: Any, values: list[float] | None,
          objectives: Sequence[Objective]) -> None:
    """Tell a score, or (None) an infeasible candidate: the worst values, constraint 1."""
    if values is None:
        trial.set_constraint("valid", 1.0)
        values = [o.worst for o in objectives]
    study.tell(trial, values)


def ranked(rows: Sequence[Mapping[str, Any]],
           objectives: Sequence[Objective]) -> list[Mapping[str, Any]]:
    """Scored rows best first: by the one objective, or by Pareto front (non-dominated
    sorting), each front ordered by the first objective, ties by the inherited
    validation loss, then by number."""
    signs = [1.0 if o.direction == "minimize" else -1.0 for o in objectives]
    keyed = [(tuple(s * v for s, v in zip(signs, loads(r["objective"]), strict=True)), r)
             for r in rows]
    fronts: list[list[tuple[tuple[float, ...], Mapping[str, Any]]]] = []
    rest = keyed
    while rest:
        front = [a for a in rest if not any(_dominates(b[0], a[0]) for b in rest)]
        fronts.append(front)
        ids = {id(a) for a in front}
        rest = [a for a in rest if id(a) not in ids]
    return [r for front in fronts
            for _, r in sorted(front, key=lambda a: (a[0][0], _loss(a[1]), a[1]["number"]))]


def _loss(row: Mapping[str, Any]) -> float:
    """The inherited validation loss: it breaks ties of a coarse objective such as
    accuracy on a small validation split (bench_oneshot: loss ranks better)."""
    loss = (loads(row.get("metrics")) or {}).get("val_loss")
    return float(loss) if loss is not None else 0.0


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b
