"""Executors: where checked candidates train, behind one small interface.

The search loop proposes, checks and records; an executor only trains. Both
implementations take the loop's jobs (``job.graph``, ``job.cfg``, ``job.spec``
...) and hand back, for each job that ended, a payload dict:

- ``{"ok": True, "metrics": {...}, "model": module or bytes, "epochs": [...]}``
- ``{"ok": False, "error": "...", "traceback": "..." | None, "epochs": [...]}``
- ``{"ok": False, "deadline": True, "epochs": [...]}`` (stopped at the timeout)
- ``{"ok": False, "pruned": True}`` (the loop's per-epoch callback pruned it)

``epochs`` are rows the loop has not recorded yet (the local executor records
them as they happen, through ``job.on_epoch``, so a pruner can watch them).

==================  ==============================================================
``size``            how many jobs may run at once
``busy``            how many are running now
``submit(job)``     start training it
``finished(block)`` the jobs that ended, with their payloads (at least one when
                    ``block`` and any are running)
``drop()``          stop every running job and return them (Ctrl-C, SIGTERM)
``close()``         release what the executor holds
==================  ==============================================================

:class:`LocalExecutor` trains in this process, one job at a time, inside
``finished``. A new executor is one class with these six members. (``backend =
ray`` is not an executor: Ray Tune owns its loop, and
:mod:`autoarch.search.tune` drives the same ``propose`` / ``settle`` steps of the
search from Tune's searcher and callback.)
"""

from __future__ import annotations

import traceback
from typing import Any, Protocol


class Executor(Protocol):
    size: int

    @property
    def busy(self) -> int: ...

    def submit(self, job: Any) -> None: ...

    def finished(self, *, block: bool) -> list[tuple[Any, dict[str, Any]]]: ...

    def drop(self) -> list[Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """One job at a time, trained in this process when the loop collects it."""

    size = 1

    def __init__(self, base_dir: Any, deadline: float | None):
        self.base_dir, self.deadline = base_dir, deadline
        self.waiting: list[Any] = []
        self.running: Any = None

    @property
    def busy(self) -> int:
        return len(self.waiting) + (self.running is not None)

    def submit(self, job: Any) -> None:
        self.waiting.append(job)

    def finished(self, *, block: bool) -> list[tuple[Any, dict[str, Any]]]:
        if not block or not self.waiting:
            return []
        job = self.running = self.waiting.pop(0)
        payload = self._train(job)
        self.running = None
        return [(job, payload)]

    def _train(self, job: Any) -> dict[str, Any]:
        import optuna

        from ..dsl.errors import SpecError
        from .evaluate import failure_reason, train_candidate
        from .trainer import DeadlineReached

        try:
            result = train_candidate(job.graph, job.cfg, self.base_dir, on_epoch=job.on_epoch,
                                     deadline=self.deadline, objective=job.objective,
                                     number=job.out.number)
        except optuna.TrialPruned:  # the pruner, through job.on_epoch (or fn's own)
            return {"ok": False, "pruned": True}
        except DeadlineReached:
            return {"ok": False, "deadline": True}
        except Exception as e:  # noqa: BLE001 - any failure in training ends the trial only
            return {"ok": False, "error": failure_reason(e),
                    "traceback": None if isinstance(e, SpecError)
                    else traceback.format_exc(limit=20)}
        return {"ok": True, "metrics": result.metrics, "model": result.model}

    def drop(self) -> list[Any]:
        jobs = ([self.running] if self.running is not None else []) + self.waiting
        self.running, self.waiting = None, []
        return jobs

    def close(self) -> None:
        pass
