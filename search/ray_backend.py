"""``backend = ray``: train candidates on Ray workers; the driver stays the only writer.

The search driver keeps proposing, checking and recording (the history database
and the Optuna study are written by the driver alone); each checked candidate is
shipped to a Ray task as the spec's text plus its choices, rebuilt and trained
there, and its metrics, epoch curve and weights come back. Up to ``workers``
trials run at once; samplers that keep no state of their own (ours) or that
handle pending trials (TPE's constant liar) see the running ones.

Ray starts a private local instance (``ray.init(address="local")``) unless one
is already initialised in the process or ``RAY_ADDRESS`` names a cluster
(``RAY_ADDRESS=auto`` after ``ray start --head``). Per-epoch pruning needs the
local backend: Ray trials report their epochs when they end.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any


def evaluate(spec_text: str, filename: str, choices: dict[str, Any], cfg: dict[str, Any],
             base_dir: str, deadline: float | None) -> dict[str, Any]:
    """Rebuild and train one candidate (runs in a Ray worker). Never raises."""
    from ..compiler.spec import loads
    from ..dsl.errors import SpecError
    from .evaluate import epoch_row, failure_reason, model_bytes, train_candidate
    from .trainer import DeadlineReached

    rows: list[dict[str, Any]] = []
    try:
        spec = loads(spec_text, filename)
        graph = spec.build(choices)
        result = train_candidate(graph, cfg, base_dir, deadline=deadline,
                                 on_epoch=lambda ep: rows.append(epoch_row(ep)))
    except DeadlineReached:
        return {"ok": False, "deadline": True, "epochs": rows}
    except Exception as e:  # noqa: BLE001 - the driver records it as a failed trial
        return {"ok": False, "error": failure_reason(e), "epochs": rows,
                "traceback": None if isinstance(e, SpecError) else traceback.format_exc(20)}
    return {"ok": True, "metrics": {**result.metrics, "worker_pid": os.getpid()},
            "epochs": rows, "model": model_bytes(result.model, spec, graph.choices,
                                                 cfg["seed"])}


class RayExecutor:
    """Up to ``size`` candidates training at once on Ray workers (an executor, see
    :mod:`autoarch.search.executors`)."""

    def __init__(self, size: int, spec: Any, base_dir: Path, deadline: float | None):
        import ray

        self.ray = ray
        self.size = size
        self.spec, self.base_dir, self.deadline = spec, base_dir, deadline
        self.owns = False
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=size, include_dashboard=False,
                         log_to_driver=False)
            self.owns = True
        self.task = ray.remote(num_cpus=1)(evaluate)
        self.jobs: dict[Any, Any] = {}

    @property
    def busy(self) -> int:
        return len(self.jobs)

    def submit(self, job: Any) -> None:
        from ..compiler.spec import to_jsonable

        ref = self.task.remote(self.spec.source, self.spec.filename,
                               to_jsonable(job.out.choices), dict(job.cfg), str(self.base_dir),
                               self.deadline)
        self.jobs[ref] = job

    def finished(self, *, block: bool) -> list[tuple[Any, dict[str, Any]]]:
        """Jobs that ended (at least one when ``block``), with what their task returned."""
        if not self.jobs:
            return []
        refs = list(self.jobs)
        ready, _ = self.ray.wait(refs, num_returns=1 if block else len(refs),
                                 timeout=None if block else 0)
        out = []
        for ref in ready:
            job = self.jobs.pop(ref)
            try:
                payload = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a worker that died fails its trial only
                payload = {"ok": False, "error": f"Ray worker failed: {type(e).__name__}: "
                                                 f"{str(e).splitlines()[0] if str(e) else ''}"}
            out.append((job, payload))
        return out

    def drop(self) -> list[Any]:
        """Cancel every running job and return them (Ctrl-C)."""
        jobs = list(self.jobs.values())
        for ref in self.jobs:
            self.ray.cancel(ref, force=True)
        self.jobs.clear()
        return jobs

    def close(self) -> None:
        if self.owns:
            self.ray.shutdown()
