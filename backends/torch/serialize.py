"""Saved models: a plain dict that ``torch.load(path, weights_only=True)`` accepts.

``{"format": "autoarch.model", "version", "spec" (the spec's text), "filename",
"choices", "seed", "state_dict"}``: enough to rebuild the module from the spec and
load its weights, with no pickled code.

Loading trusts nothing in the file: anything that is not such a dict is a one-line
CommandError, a bad embedded spec a SpecError, and a spec that asks for a model over
``limits.MAX_PARAMS`` parameters is refused before its weights are allocated.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ...compiler import limits
from ...compiler.spec import Spec, loads
from ...compiler.values import to_json
from ...dsl.errors import CommandError, SpecLimitError
from .lower import lower_graph

FORMAT = "autoarch.model"
#: most bytes the entries of a model file may hold once read: every parameter as
#: float64, and room for the spec text and the archive's own records
MAX_FILE_BYTES = 8 * limits.MAX_PARAMS + 64 * 2**20


def save_model(model: nn.Module, spec: Spec, choices: dict[str, Any],
               path: str | Path | BinaryIO, *, seed: int | None = None) -> None:
    """Write the model dict to ``path`` (a file name or a binary file object)."""
    from ..._version import __version__

    torch.save({
        "format": FORMAT, "version": __version__, "spec": spec.source,
        "filename": spec.filename, "choices": {k: to_json(v) for k, v in choices.items()},
        "seed": seed, "state_dict": model.state_dict(),
    }, path if hasattr(path, "write") else Path(path))


def load_model(path: str | Path) -> nn.Module:
    """Rebuild a saved model: its spec, its candidate, then its weights."""
    data = _read(Path(path))
    spec = loads(data["spec"], data["filename"])
    graph = spec.build(data["choices"])
    try:
        spec.check_params(graph)
    except SpecLimitError as e:
        raise CommandError(f"{path} asks for a model of {graph.params:,} parameters; the limit "
                           f"is {limits.MAX_PARAMS:,} (MAX_PARAMS)",
                           hint=e.hint) from None
    model = lower_graph(graph, seed=data["seed"])
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError:
        raise _not_ours(path, "its weights do not fit the model its spec describes") from None
    return model


def _read(p: Path) -> dict[str, Any]:
    """The model dict in file ``p``, its shape checked; CommandError for anything else."""
    if not p.exists():
        raise CommandError(f"no such file: {p}")
    if p.is_dir():
        raise CommandError(f"{p} is a directory", hint="give the path of a saved model (.pt)")
    if not p.is_file():  # a pipe or a device: reading it could wait forever
        raise CommandError(f"{p} is not a regular file", hint="give the path of a saved model")
    # torch.save writes a zip archive; its directory says how much reading will allocate
    try:
        with zipfile.ZipFile(p) as z:
            size = sum(info.file_size for info in z.infolist())
    except zipfile.BadZipFile:
        raise _not_ours(p, "not a file written by torch.save") from None
    except OSError as e:
        raise CommandError(f"cannot read {p}: {e.strerror or e}") from None
    if size > MAX_FILE_BYTES:
        raise _not_ours(p, f"it would take {size:,} bytes to read; a model within "
                           f"MAX_PARAMS takes at most {MAX_FILE_BYTES:,}")
    try:
        data = torch.load(p, weights_only=True, map_location="cpu")
    except OSError as e:
        raise CommandError(f"cannot read {p}: {e.strerror or e}") from None
    except Exception as e:  # torch raises many kinds of error for a file not its own
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise _not_ours(p, f"torch cannot read it: {reason[:160]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _not_ours(p, "a torch file, but not an autoarch model")
    checks = {"spec": str, "filename": str, "choices": dict, "state_dict": dict}
    for key, kind in checks.items():
        if not isinstance(data.get(key), kind):
            raise _not_ours(p, f"its '{key}' entry is missing or not a {kind.__name__}")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _not_ours(p, "its 'seed' entry is not an integer")
    state = data["state_dict"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise _not_ours(p, "its 'state_dict' entry is not a dict of tensors")
    return {**data, "seed": seed}


def _not_ours(path: str | Path, why: str) -> CommandError:
    return CommandError(f"{path} is not a model saved by autoarch ({why})",
                        hint="autoarch.load_model reads files of `autoarch compile -o` and "
                             "`autoarch best -o`")

