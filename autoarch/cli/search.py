"""`autoarch search FILE`: search the space, train candidates, record them in SQLite."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..search.strategies import MODULES
from ._common import PLUGIN_OPTION, load_spec
from ._console import out
from ._runs import best_table, fmt_objective, short_choices


class _Bar:
    """Progress bar (trial i/N, best so far, elapsed, ETA) and one line per trial."""

    def __init__(self, objectives: list[Any]):
        self.objectives = objectives
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=out, transient=False)
        self.task: Any = None
        self.t0 = time.monotonic()

    def start(self, run: str, requested: int, counted: int, resumed: bool) -> None:
        verb = "resuming" if resumed else "starting"
        out.print(f"{verb} run {run}: {counted}/{requested} trials done", markup=False)
        self.progress.start()
        self.task = self.progress.add_task("trials", total=requested, completed=counted,
                                           best="-")

    def trial(self, o: Any, counted: int, best: list[float] | None) -> None:
        text = f"#{o.number:<4} {o.state:<9}"
        if o.objective is not None:
            text += " " + fmt_objective(self.objectives, o.objective)
        if o.params is not None:
            text += f"  params {o.params:,}"
        if o.duplicate_of is not None:
            text += f"  (same candidate as #{o.duplicate_of})"
        if o.error:
            text += f"  {o.error}"
        if o.state not in ("invalid",):
            text += f"  {o.duration_s:.1f}s"
        text += "  " + short_choices(o.choices)
        self.progress.console.print(text, markup=False, highlight=False)
        self.progress.update(self.task, completed=counted,
                             best=fmt_objective(self.objectives, best) if best else "-")

    def note(self, text: str) -> None:
        self.progress.console.print(text, markup=False)

    def stop(self) -> None:
        self.progress.stop()


#: the strategies of this version, one per module of search/strategies/
_STRATEGY_HELP = ", ".join([*MODULES][:-1]) + " or " + [*MODULES][-1]


def search_(
    file: str = typer.Argument(..., help="the .spec file"),
    strategy: str | None = typer.Option(None, "--strategy", "-s",
                                        help=_STRATEGY_HELP),
    trials: int | None = typer.Option(None, "--trials", "-n",
                                      help="trials that run to their end"),
    epochs: int | None = typer.Option(None, "--epochs", "-e",
                                      help="epochs of every trial (replaces the spec's)"),
    data: str | None = typer.Option(None, "--data",
                                    help="data of every trial, replacing the spec's: a bundled "
                                         "name (digits) or spec text "
                                         "('csv(\"d.csv\", target = \"y\")')"),
    db: str = typer.Option("autoarch.db", "--db", help="history database (SQLite)"),
    name: str | None = typer.Option(None, "--name", help="run name; an existing one resumes"),
    seed: int | None = typer.Option(None, "--seed", help="seed of the search"),
    timeout: float | None = typer.Option(None, "--timeout", help="seconds for the search"),
    pruner: str | None = typer.Option(None, "--pruner",
                                      help="none, asha, median or hyperband"),
    backend: str | None = typer.Option(None, "--backend",
                                       help="local (this process) or ray (Ray Tune)"),
    workers: int | None = typer.Option(None, "--workers", help="trials at once (ray)"),
    cpus_per_trial: float | None = typer.Option(None, "--cpus-per-trial",
                                                help="CPUs Ray reserves per trial (ray)"),
    gpus_per_trial: float | None = typer.Option(None, "--gpus-per-trial",
                                                help="GPUs Ray reserves per trial; fractions "
                                                     "share one (ray)"),
    supernet_epochs: int | None = typer.Option(None, "--supernet-epochs",
                                               help="oneshot: epochs of supernet training"),
    path_sampler: str | None = typer.Option(None, "--path-sampler",
                                            help="oneshot: uniform, fair or pada"),
    evaluate: int | None = typer.Option(None, "--evaluate",
                                        help="oneshot: candidates scored on the supernet"),
    retrain: int | None = typer.Option(None, "--retrain",
                                       help="oneshot: best candidates trained alone"),
    then: str | None = typer.Option(None, "--then",
                                    help="oneshot: the strategy that proposes what to score"),
    replay: str | None = typer.Option(None, "--replay",
                                      help="look every trial up in this table (autoarch "
                                           "tabulate) instead of training it"),
    draw: str = typer.Option("seed", "--draw",
                             help="replay: seed (one recorded seed per trial) or mean"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Search the spec's space: train candidates and record every trial in --db."""
    import autoarch
    from autoarch.search.engine import SearchInterrupted
    from autoarch.search.options import objectives_of

    spec = load_spec(file)
    objectives = objectives_of(spec.search_config()["objective"])
    bar = _Bar(objectives)
    try:
        result = autoarch.search(spec, strategy=strategy, trials=trials, epochs=epochs,
                                 data=data, db=db, name=name, seed=seed, timeout=timeout,
                                 pruner=pruner, backend=backend, workers=workers,
                                 cpus_per_trial=cpus_per_trial,
                                 gpus_per_trial=gpus_per_trial, supernet_epochs=supernet_epochs, path_sampler=path_sampler,
                                 evaluate=evaluate, retrain=retrain, then=then, replay=replay,
                                 draw=draw, reporter=bar)
    except SearchInterrupted as e:
        bar.stop()
        _interrupted(e)
    finally:
        bar.stop()
    if result.stopped:
        out.print(f"stopped: {result.stopped}", markup=False)
    states: dict[str, int] = {}
    for o in result.outcomes:
        states[o.state] = states.get(o.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    out.print(f"run {result.run}: {result.counted}/{result.requested} trials done"
              + (f" ({summary} in this session)" if summary else ""), markup=False)
    if result.best:
        out.print(best_table(result.best, result.objectives))
        if replay is not None:  # looked up, not trained: no weights to export
            out.print(f"history: {result.db} (run {result.run}, replayed from {replay}: no "
                      f"weights); `autoarch export {result.db} --run {result.run} --format "
                      "spec -o best.spec` writes the best as a spec to train", markup=False)
        else:
            out.print(f"history: {result.db} (run {result.run}); `autoarch best {result.db} "
                      f"--run {result.run} -o best.pt` exports the best", markup=False)
    else:
        out.print("no trial completed", markup=False)
        out.print(f"history: {result.db} (run {result.run}); `autoarch history {result.db} "
                  f"--run {result.run}` lists its trials and their errors", markup=False)


def _interrupted(e: Any) -> None:
    """One line on how to resume, then exit 130 (Ctrl-C) or 143 (SIGTERM)."""
    import shlex
    import sys

    from ._console import err

    args = sys.argv[1:]
    if e.run is not None and "--name" not in args and not any(a.startswith("--name=")
                                                              for a in args):
        args += ["--name", e.run]
    command = "autoarch " + " ".join(shlex.quote(a) for a in args)
    what = f"run {e.run} in {e.db} is saved" if e.run is not None else "nothing was run"
    err.print(f"interrupted ({e.signal_name}): {what}; resume with: {command}", markup=False,
              highlight=False)
    raise typer.Exit(143 if e.signal_name == "SIGTERM" else 130)
