"""What one search does: its settings, objectives and overrides, checked before it runs.

The spec's `search` block gives the defaults; arguments (the CLI's flags) override
them. ``--epochs`` and ``--data`` become :class:`~autoarch.search.evaluate.Overrides`
of every trial's training settings. Everything here is checked before the history
database is opened, so a mistake writes nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.settings import EPOCH_METRICS
from ..compiler.spec import Spec
from ..compiler.values import Symbol, SymbolCall
from ..dsl.errors import CommandError, SpecError
from .evaluate import Overrides
from .history import loads


class SearchError(CommandError):
    """The search itself cannot run (as opposed to a trial failing).

    One line, or a located diagnostic when it points into the spec.
    """


@dataclass(frozen=True)
class Objective:
    direction: str  # "maximize" | "minimize"
    metric: str

    def __str__(self) -> str:
        return f"{self.direction}({self.metric})"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    @property
    def worst(self) -> float:
        return -math.inf if self.direction == "maximize" else math.inf


def objectives_of(value: Any) -> list[Objective]:
    items = value if isinstance(value, tuple) else (value,)
    return [Objective(it.name, it.args[0].name) for it in items]


def objectives_of_text(text: str) -> list[Objective]:
    """Objectives as a run row stores them (``["maximize(val_accuracy)"]``)."""
    out = []
    for item in loads(text):
        direction, _, rest = item.partition("(")
        out.append(Objective(direction, rest.rstrip(")")))
    return out


@dataclass
class Options:
    """What one search does; the spec's `search` block, overridden by arguments."""

    strategy: str
    trials: int
    objectives: list[Objective]
    seed: int
    timeout: float | None
    pruner: str
    backend: str
    workers: int
    overrides: Overrides = field(default_factory=Overrides)
    #: what Ray reserves for each trial (backend ray)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    # one-shot search (strategy = oneshot; docs/oneshot.md)
    supernet_epochs: int = 10
    path_sampler: str = "uniform"
    evaluate: int = 200
    retrain: int = 3
    then: str = "evolution"
    #: the user's objective function (``autoarch.search(objective=fn)``), or None: the
    #: built-in trainer
    objective: Any = None

    @property
    def epochs(self) -> int | None:
        return self.overrides.epochs

    def settings(self) -> dict[str, Any]:
        """What a resumed run must keep: settings that change what trials mean."""
        out = {"strategy": self.strategy, "objectives": [str(o) for o in self.objectives],
               "seed": self.seed, "pruner": self.pruner, **self.overrides.to_json(),
               "objective_fn": None if self.objective is None else self.objective.name}
        out["oneshot"] = self.oneshot()
        return out

    def oneshot(self) -> dict[str, Any] | None:
        """A one-shot search's own settings (None for other strategies)."""
        if self.strategy != "oneshot":
            return None
        return {"supernet_epochs": self.supernet_epochs, "path_sampler": self.path_sampler,
                "evaluate": self.evaluate, "retrain": self.retrain, "then": self.then}


def overrides_of(epochs: Any, data: Any) -> Overrides:
    from ..compiler.settings import check_setting

    if epochs is not None:
        try:
            epochs = check_setting("train", "epochs", epochs, None, None)  # type: ignore[arg-type]
        except SpecError as e:
            raise CommandError(f"--{e.message}") from None
    if data is not None:
        data = data_value(data)
    return Overrides(epochs=epochs, data=data)


def data_value(data: Any) -> Any:
    """A data set given outside the spec (``--data``): a name, spec text, or a value.

    Relative file paths are made absolute from the current folder. An
    :class:`autoarch.Dataset` is taken as it is.
    """
    from ..compiler.spec import loads as load_spec_text

    if _is_dataset(data):
        return data

    if isinstance(data, str):
        text = data.strip()
        if not text or any(c in text for c in "{}\n\r"):
            raise CommandError(f"--data {data!r} is not one data value",
                               hint='give a bundled name such as digits, or '
                                    'csv("file.csv", target = "label") or npz("file.npz")')
        source = f"model data_(x: [1]) -> [1] {{\n  return x\n}}\ntrain {{ data = {text} }}\n"
        try:
            data = load_spec_text(source, "--data").train_config()["data"]
        except SpecError as e:
            raise CommandError(f"--data {text}: {e.message}",
                               hint=e.hint or 'a bundled name such as digits, or '
                                              'csv("file.csv", target = "label")') from None
    if isinstance(data, SymbolCall) and data.args and isinstance(data.args[0], str):
        path = str(Path(data.args[0]).expanduser().resolve())
        data = SymbolCall(data.name, (path, *data.args[1:]), data.kwargs)
    if not isinstance(data, Symbol | SymbolCall):
        raise CommandError(f"data must be a bundled data set name, spec text or an "
                           f"autoarch.Dataset, got {type(data).__name__}",
                           hint="autoarch.Dataset.from_tensors(x_train, y_train, x_val, y_val) "
                                "for tensors of your own")
    return data


def _is_dataset(data: Any) -> bool:
    """An ``autoarch.Dataset`` (without importing torch to find out)."""
    return type(data).__name__ == "Dataset" and type(data).__module__.endswith("search.data")


_NO_OVERRIDES = Overrides()


def options_of(spec: Spec, *, overrides: Overrides = _NO_OVERRIDES, objective: Any = None,
               **given: Any) -> Options:
    from ..compiler.settings import check_setting

    cfg = spec.search_config()
    for key, value in given.items():
        if value is None:
            continue
        if key in ("strategy", "pruner", "backend", "path_sampler", "then"):
            if not isinstance(value, str):
                raise CommandError(f"--{key} takes a name, got {value!r}")
            value = Symbol(value)
        try:
            cfg[key] = check_setting("search", key, value, None, None)  # type: ignore[arg-type]
        except SpecError as e:
            message = e.message
            flag = key.replace("_", "-")  # the flag as it is typed: --cpus-per-trial
            message = (flag + message[len(key):] if message.startswith(key)
                       else f"{flag}: {message}")
            raise CommandError(f"--{message}", hint=e.hint) from None
    opts = Options(strategy=cfg["strategy"].name, trials=cfg["trials"],
                   objectives=objectives_of(cfg["objective"]), seed=cfg["seed"],
                   timeout=cfg["timeout"], pruner=cfg["pruner"].name,
                   backend=cfg["backend"].name, workers=cfg["workers"], overrides=overrides,
                   cpus_per_trial=float(cfg["cpus_per_trial"]),
                   gpus_per_trial=float(cfg["gpus_per_trial"]),
                   supernet_epochs=cfg["supernet_epochs"], path_sampler=cfg["path_sampler"].name,
                   evaluate=cfg["evaluate"], retrain=cfg["retrain"], then=cfg["then"].name)
    if objective is not None:
        from .objective import UserObjective

        _check_objective(objective)
        opts.objective = UserObjective(objective, opts.objectives)
    if opts.strategy == "oneshot":
        blk = spec.program.search
        said_then = given.get("then") is not None or (
            blk is not None and any(st.name == "then" for st in blk.settings))
        if not said_then and len(opts.objectives) > 1:
            opts.then = "nsga2"  # the default for several objectives (evolution has one)
        if given.get("trials") is not None:
            raise CommandError("--trials does not apply to a one-shot search: its trials are "
                               "the best candidates retrained", hint="use --retrain N")
        data = overrides.data
        if _is_dataset(data) and not data.in_memory:
            raise CommandError("a one-shot search trains its supernet on data in memory; "
                               f"{data} reads torch datasets",
                               hint="give autoarch.Dataset.from_tensors(...) instead")
        _check_oneshot(spec, opts)
    if opts.pruner != "none":
        from .strategies._common import single_objective

        single_objective(f"pruner {opts.pruner}", len(opts.objectives))
        if opts.objectives[0].metric not in EPOCH_METRICS:
            raise SearchError(f"a pruner watches a metric measured every epoch, not "
                              f"{opts.objectives[0].metric}",
                              hint="one of " + ", ".join(EPOCH_METRICS))
    if opts.backend == "ray":
        try:
            import ray.tune  # noqa: F401 - Ray with its Tune extras
        except ImportError:
            raise CommandError("backend ray needs Ray Tune, which is not installed",
                               hint='pip install "autoarch[ray]", or use --backend local'
                               ) from None
        _check_picklable(opts)
    return opts


def _check_objective(fn: Any) -> None:
    """An objective function must take (model, trial)."""
    import inspect

    if not callable(fn):
        raise CommandError(f"objective must be a function fn(model, trial), got "
                           f"{type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: it will tell
        return
    try:
        sig.bind(None, None)
    except TypeError:
        raise CommandError(f"objective {getattr(fn, '__name__', fn)!s}{sig} cannot be called "
                           "as fn(model, trial)",
                           hint="take the compiled model and the trial: def fit(model, trial)"
                           ) from None


def _check_picklable(opts: Options) -> None:
    """What travels to Ray's workers (the objective function, a Dataset) must pickle:
    said before the run is written, not as Ray's traceback."""
    from ray import cloudpickle

    for what, value in (("objective function", opts.objective and opts.objective.fn),
                        ("data set", opts.overrides.data if _is_dataset(opts.overrides.data)
                         else None)):
        if value is None:
            continue
        try:
            cloudpickle.dumps(value)
        except Exception as e:  # noqa: BLE001 - any reason it cannot be sent, as one line
            raise CommandError(f"the {what} cannot be sent to Ray's workers: "
                               f"{type(e).__name__}: {e}",
                               hint="it must pickle: keep locks, open files and "
                                    "connections out of it (create them inside), or use "
                                    "backend local") from None


def _check_oneshot(spec: Spec, opts: Options) -> None:
    """A one-shot search: a spec one supernet holds, a strategy to score with, objectives
    a score on the supernet measures. Its trials are the ``retrain`` best."""
    from ..compiler.settings import COST_METRICS
    from ..compiler.supernet import check_supernet

    check_supernet(spec)
    if opts.then == "oneshot":
        raise CommandError("then = oneshot: the strategy that scores candidates on the "
                           "supernet must be a multi-trial one",
                           hint="evolution (the default), random, tpe, mcts, nsga2 or grid")
    from .strategies import make_sampler

    make_sampler(opts.then, spec, seed=opts.seed, n_objectives=len(opts.objectives),
                 trials=opts.evaluate)  # refuses what it cannot do (several objectives)
    if opts.pruner != "none":
        raise SearchError("a pruner stops multi-trial training early; a one-shot search "
                          "retrains only its best candidates", hint="set pruner = none")
    scored = {"val_loss", "val_accuracy", *COST_METRICS}
    for o in opts.objectives:
        if o.metric not in scored:
            raise SearchError(f"objective {o} cannot be measured on the supernet",
                              hint="one-shot search scores " + ", ".join(sorted(scored)))
    opts.trials = opts.retrain


def spec_hash(spec: Spec) -> str:
    return hashlib.sha256(spec.source.encode()).hexdigest()[:16]
