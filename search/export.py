"""Export a trial of a search history: its trained model as ``pt``, ``py`` or ``onnx``,
or its architecture as a frozen spec (``spec``).

``autoarch export DB`` is a thin call of :func:`export`. The run is the one named, or
(as ``autoarch best`` picks it) the latest run with a complete trial; the trial is the
one numbered, or the run's best (the first of the Pareto front for several
objectives). Every mistake (an unknown run or trial, a trial that is not complete or
whose weights were not kept, a bad format, an output that cannot be written) is one
:class:`~autoarch.dsl.errors.CommandError`, raised before anything is written.

Example:
    >>> out = export("runs.db", format="py", path="model.py")   # and model.pt beside it
    >>> out.paths, out.trial
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dsl.errors import CommandError

FORMATS = ("py", "onnx", "spec", "pt")
SUFFIXES = {"py": ".py", "onnx": ".onnx", "spec": ".spec", "pt": ".pt"}


@dataclass
class Exported:
    """What :func:`export` wrote."""

    run: str
    trial: int
    format: str
    #: the files written: the Python file first, then its weights, for ``py``
    paths: list[Path]
    #: how the run and the trial were chosen, when not by name or number
    notes: list[str] = field(default_factory=list)


def export(db: str | Path, format: str, path: str | Path, *,  # noqa: A002 - the flag's name
           run: str | None = None, trial: int | None = None) -> Exported:
    """Export trial ``trial`` (by its number in the run; default: the best) of run ``run``
    (default: the latest with a complete trial) of history ``db`` to ``path``.

    ``format``: ``pt`` (the model file ``autoarch.load_model`` reads), ``py`` (one
    Python file of plain torch code, ``path`` ending in ``.py``, and its state dict
    beside it with the suffix ``.pt``), ``onnx`` (checked with onnxruntime) or
    ``spec`` (the spec with this trial's decisions written in; needs no weights).
    """
    if format not in FORMATS:
        raise CommandError(f"unknown format {format!r}",
                           hint="--format is one of " + ", ".join(FORMATS))
    targets = _targets(format, Path(path))
    from .history import History, unreadable

    h = History(db, readonly=True)
    try:
        r, notes = _the_run(h, str(db), run)
        row = _the_trial(h, r, trial, notes)
        try:
            files = _contents(h, r, row, format, targets, notes)
        except (ValueError, TypeError) as e:  # a stored value that does not decode
            raise unreadable(db, e) from e
    finally:
        h.close()
    _write_all(files)
    return Exported(r["name"], row["number"], format, [p for p, _ in files], notes)


# ---- choosing -------------------------------------------------------------------------


def _the_run(h: Any, db: str, name: str | None) -> tuple[dict[str, Any], list[str]]:
    if name is not None:
        return h.get_run(name), []
    row = h.latest_run(complete=True)
    if row is None:
        h.get_run(None)  # a HistoryError when there are no runs at all
        raise CommandError(f"no run in {db} has a complete trial yet",
                           hint=f"`autoarch history {db}` shows every run's trials")
    return row, [f"run {row['name']}: the latest run with a complete trial"]


def _the_trial(h: Any, r: dict[str, Any], number: int | None,
               notes: list[str]) -> dict[str, Any]:
    from .options import objectives_of_text
    from .results import best_trials

    if number is None:
        objectives = objectives_of_text(r["objectives"])
        rows = best_trials(h, r["id"], objectives)
        if not rows:
            raise CommandError(f"run {r['name']} has no complete trial yet",
                               hint=f"`autoarch history DB --run {r['name']}` shows its trials")
        which = "best" if len(objectives) == 1 else \
            f"first of the Pareto front of {len(rows)} (--trial picks another)"
        notes.append(f"trial #{rows[0]['number']}: the run's {which}")
        return rows[0]
    rows = h.trials(r["id"])
    found = [t for t in rows if t["number"] == number]
    if not found:
        numbers = [t["number"] for t in rows]
        have = f"its trials are #{min(numbers)} to #{max(numbers)}" if numbers else \
            "it has no trials"
        raise CommandError(f"run {r['name']} has no trial #{number}",
                           hint=f"{have}; `autoarch history DB --run {r['name']}` lists them")
    t = found[0]
    if t["state"] != "complete":
        why = f" ({t['error'].splitlines()[0][:120]})" if t.get("error") else ""
        raise CommandError(f"trial #{number} of run {r['name']} is {t['state']}, not "
                           f"complete{why}", hint="only a trained trial can be exported")
    return t


# ---- the files --------------------------------------------------------------------


def _targets(format: str, path: Path) -> list[Path]:  # noqa: A002
    """The files an export to ``path`` writes, each checked to be writable."""
    if format == "py":
        if path.suffix != ".py":
            raise CommandError(f"--format py writes a Python file; {path} does not end in .py",
                               hint=f"give -o {path.with_suffix('.py').name}: the weights go "
                                    "beside it, with the suffix .pt")
        out = [path, path.with_suffix(".pt")]
    else:
        out = [path]
    for p in out:
        _check_writable(p)
    return out


def _check_writable(path: Path) -> None:
    text = str(path)
    if not text:
        raise CommandError("-o needs a file name", hint="for example -o model.pt")
    target = Path(os.path.realpath(path))
    if target.is_dir() or text.endswith(("/", os.sep)):
        raise CommandError(f"{path} is a directory", hint="give -o a file name")
    if target.exists() and not target.is_file():
        raise CommandError(f"cannot write {path}: it is not a regular file",
                           hint="give -o a file name")
    folder = target.parent
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise CommandError(f"cannot write {path}: folder {path.parent} {what}",
                           hint="create the folder first, or give -o another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"cannot write {path}: folder {path.parent} is not writable",
                           hint="give -o another path")
    if target.exists() and not os.access(target, os.W_OK):
        raise CommandError(f"cannot write {path}: it is read-only",
                           hint="make it writable, or give -o another path")


def _contents(h: Any, r: dict[str, Any], t: dict[str, Any], format: str,  # noqa: A002
              targets: list[Path], notes: list[str]) -> list[tuple[Path, bytes]]:
    what = f"trial #{t['number']} of run {r['name']}"
    if format == "spec":
        return [(targets[0], _frozen(r, t, what).encode())]
    data = _weights(h, r, t, notes)
    if format == "pt":
        return [(targets[0], data)]
    model, spec, graph = _model(data, what)
    from ..backends.torch import export as ex

    if format == "onnx":
        return [(targets[0], ex.to_onnx(model, op_of=_op_namer(model, graph)))]
    doc = (f"{type(model).__name__}: {what}, exported by `autoarch export --format py`.\n\n"
           f"Spec: {spec.filename}\nArchitecture: {graph.hash}\nDecisions:\n\n"
           + "\n".join(f"    {k} = {_shown(v)}" for k, v in graph.choices.items()))
    out = ex.to_python(model, weights_file=targets[1].name, doc=doc)
    return [(targets[0], out.source.encode()), (targets[1], _state_bytes(out.state_dict))]


def _weights(h: Any, r: dict[str, Any], t: dict[str, Any], notes: list[str]) -> bytes:
    data = h.weights(t["id"])
    if data is None and t.get("duplicate_of") is not None:
        # a duplicate was not trained again: the trial it repeats holds the weights
        same = [x for x in h.trials(r["id"]) if x["number"] == t["duplicate_of"]]
        data = h.weights(same[0]["id"]) if same else None
        if data is not None:
            notes.append(f"trial #{t['number']} repeats trial #{t['duplicate_of']}: "
                         "its weights")
    if data is None:
        raise CommandError(f"the weights of trial #{t['number']} of run {r['name']} were not "
                           "kept (a search keeps those of the best trials, the whole Pareto "
                           "front for several objectives)",
                           hint="export a best trial (`autoarch best DB` lists them), or "
                                "--format spec, which needs no weights")
    return data


def _model(data: bytes, what: str) -> tuple[Any, Any, Any]:
    """The model a weights blob holds, with its spec and graph."""
    from ..backends.torch.serialize import _read, load_model
    from ..compiler.spec import loads

    with tempfile.TemporaryDirectory(prefix="autoarch-export-") as tmp:
        p = Path(tmp) / "model.pt"
        p.write_bytes(data)
        model = load_model(p)
        info = _read(p)
    spec = loads(info["spec"], info["filename"])
    return model, spec, spec.build(info["choices"])


def _op_namer(model: Any, graph: Any) -> Callable[[str], str | None]:
    """module name -> ``op 'moe' at file:line:col``, for a top-level submodule."""
    owners = getattr(model, "autoarch_owners", {})

    def op_of(name: str) -> str | None:
        if name not in owners:
            return None
        nd = graph.nx.nodes[owners[name][0]]
        sp = nd.get("span")
        where = f" at {sp.filename}:{sp.line}:{sp.column}" if sp is not None else ""
        return f"op '{nd['op']}'{where}"

    return op_of


def _frozen(r: dict[str, Any], t: dict[str, Any], what: str) -> str:
    from ..compiler.freeze import freeze
    from ..compiler.spec import loads

    spec = loads(r["spec_text"], r["spec_file"] or "<spec>")
    choices = json.loads(t["choices"]) if isinstance(t["choices"], str) else t["choices"]
    header = (f"{what}, frozen by `autoarch export --format spec`.\n"
              f"Spec: {r['spec_file'] or '(not recorded)'}\n"
              f"Architecture: {t['arch_hash']}\n"
              "Every decision is written in; loops whose iterations decided differently are\n"
              "unrolled and defs holding decisions specialised per call: one candidate.")
    return freeze(spec, choices, header=header)


def _shown(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _state_bytes(state: dict[str, Any]) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _write_all(files: list[tuple[Path, bytes]]) -> None:
    """Write every file whole or none: each to a temporary file beside it first, then
    all renamed into place."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            target = Path(os.path.realpath(path))
            try:
                mode = stat.S_IMODE(target.stat().st_mode)
            except OSError:
                umask = os.umask(0o022)
                os.umask(umask)
                mode = 0o666 & ~umask
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".autoarch-", suffix=".tmp")
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
        for tmp, target in temps:
            os.replace(tmp, target)
    except OSError as e:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        where = e.filename or (files[0][0] if files else "")
        raise CommandError(f"cannot write {where}: {e.strerror or e}",
                           hint="check the folder's permissions and free space, or give -o "
                                "another path") from None
