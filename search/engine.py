"""``autoarch.search``: a search run in this process, one trial at a time.

:func:`search` checks the arguments, opens the run (:class:`~autoarch.search.driver.Driver`)
and drives its steps with the in-process executor, or hands them to Ray Tune's loop
for ``backend = ray`` (:mod:`autoarch.search.tune`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..compiler.spec import Spec
from .driver import Driver, Reporter
from .options import options_of, overrides_of
from .results import SearchResult
from .run_setup import SearchInterrupted as SearchInterrupted  # public here too

__all__ = ["Reporter", "SearchInterrupted", "search"]


def search(spec: Spec, *, strategy: str | None = None, trials: int | None = None,
           epochs: int | None = None, data: Any = None, db: str | Path = "autoarch.db",
           name: str | None = None, seed: int | None = None, timeout: float | None = None,
           pruner: str | None = None, backend: str | None = None, workers: int | None = None,
           cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
           supernet_epochs: int | None = None, path_sampler: str | None = None,
           evaluate: int | None = None, retrain: int | None = None, then: str | None = None,
           objective: Any = None, replay: str | Path | None = None, draw: str = "seed",
           reporter: Reporter | None = None) -> SearchResult:
    """Search ``spec``'s space; every argument left None comes from the spec's `search`.

    ``epochs`` and ``data`` replace the spec's `train` settings for every trial
    (``data`` as a bundled name, or spec text such as ``'csv("d.csv", target = "y")'``;
    a relative path starts at the current folder). Running again with the same
    ``db`` and ``name`` resumes that run; its settings must be the same.
    ``supernet_epochs``, ``path_sampler``, ``evaluate``, ``retrain`` and ``then`` set
    a one-shot search (``strategy="oneshot"``, docs/oneshot.md). ``backend="ray"`` runs
    the trials on Ray Tune, ``workers`` at once, each with ``cpus_per_trial`` CPUs and
    ``gpus_per_trial`` GPUs (docs/ray.md).

    ``objective`` trains each candidate with a function of yours instead of the
    built-in trainer: ``objective(model, trial)`` returns the objective's value (a
    number, or a dict of metrics) and may call ``trial.report(epoch, **metrics)``
    (docs/embedding.md). ``data`` may be an :class:`autoarch.Dataset` of your own
    tensors or of ``torch.utils.data.Dataset`` objects.

    ``replay`` looks every trial up in a table built by :func:`autoarch.tabulate`
    instead of training it (``draw="seed"``: one recorded seed per trial, ``"mean"``:
    the mean over the seeds; docs/tables.md).

    Raises:
        SpecError: a mistake in the spec or the arguments (nothing is written).
        SearchInterrupted: Ctrl-C or SIGTERM; the run is saved and can resume.

    Example:
        >>> result = autoarch.search(spec, strategy="tpe", trials=20, db="runs.db")
        >>> result.best[0]["metrics"]["val_accuracy"]
    """
    opts = options_of(spec, strategy=strategy, trials=trials, seed=seed, timeout=timeout,
                      pruner=pruner, backend=backend, workers=workers,
                      cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                      supernet_epochs=supernet_epochs, path_sampler=path_sampler,
                      evaluate=evaluate, retrain=retrain, then=then, objective=objective,
                      overrides=overrides_of(epochs, data))
    if replay is not None:
        from .tables import replay_options

        replay_options(spec, opts, replay, draw)
    return run(Driver(spec, opts, Path(db), name, reporter or Reporter()))



def run(d: Driver) -> SearchResult:
    """Run the search ``d`` holds to its end: its result."""
    with contextlib.ExitStack() as stack:
        if d.opts.backend == "ray":  # Ray up, and able to run a trial, before the run
            from .tune import ray_for

            stack.enter_context(ray_for(d.opts))
        study, sampler = d.begin(stack)
        if d.opts.backend == "ray":
            from .tune import run_on_tune

            return d.close(study, run_on_tune(d, study, sampler))
        return d.close(study, _local_loop(d, study, sampler))


def _local_loop(d: Driver, study: Any, sampler: Any) -> str | None:
    """Propose, train in this process, record, until the budget is used; why it
    stopped (None: the trials asked for are done)."""
    from .executors import LocalExecutor

    ex = LocalExecutor(d.base_dir, d.deadline)
    try:
        while True:
            if d.full(ex.busy):
                if not ex.busy:
                    return None
                _collect(d, study, ex, block=True)
                continue
            stop = d.should_stop(study, sampler)
            if stop is not None:
                break
            _collect(d, study, ex, block=ex.busy >= ex.size)
            if ex.busy >= ex.size or d.timed_out:
                continue  # (what was collected may have ended the search)
            job = d.propose(study)
            if job is not None:
                ex.submit(job)
        while ex.busy:  # running trials stop at the deadline too
            _collect(d, study, ex, block=True)
        return f"timeout after {d.opts.timeout:g} s" if stop == "timeout" else stop
    except KeyboardInterrupt:
        d.interrupt_all(study, ex.drop())
        raise
    finally:
        ex.close()


def _collect(d: Driver, study: Any, ex: Any, *, block: bool) -> None:
    """Record the jobs the executor finished, then tell the study."""
    for job, payload in ex.finished(block=block):
        d.settle(study, job, payload)
