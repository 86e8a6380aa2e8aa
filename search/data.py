"""Data sets of the `train` block: bundled tasks, `synthetic(...)`, `csv(...)` and `npz(...)`.

:func:`load_data` turns the spec's ``data`` value into a :class:`Dataset` of
float32 inputs and targets already split into train, validation and test.
Every bundled set is generated from a fixed seed (not the training seed), so all
trials of a search, whatever their ``seed``, see the same rows in the same split;
docs/data.md lists each set's formula and split sizes.

Splits: the test split is a fixed 20% of the rows, then ``val_split`` of the
rest is held out for validation; classification splits are stratified (each
class keeps its share in every split, to within one row). Loaded sets are cached
in-process, so repeated trials do not regenerate or re-read them: treat a
returned Dataset as read-only.

Example:
    >>> data = load_data(Symbol("digits"))
    >>> data.input_shape, data.output_shape, len(data.x_train)
    ((64,), (10,), 1150)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..compiler.config import DATASETS, check_setting
from ..compiler.values import Symbol, SymbolCall
from ..dsl.errors import CommandError, SpecError, suggest

#: share of all rows kept aside as the test split (before ``val_split`` is applied)
TEST_SPLIT = 0.2
#: seed every bundled data set is generated from
GENERATION_SEED = 0
#: fewest rows a csv / npz file may have (each split needs some)
MIN_ROWS = 10
#: a numeric csv target with integer values and at most this many distinct values is a class label
MAX_CSV_CLASSES = 100


class DataError(CommandError):
    """The data set named by the spec cannot be used (missing file, bad column, ...).

    It prints as one line, ``error: message; hint``: the message names the file and,
    where it applies, the row (the line number in the file) and the column.
    """


@dataclass
class Dataset:
    """A task's data, split three ways: float32 inputs; int64 classes or float32 targets.

    ``y_*`` are class indices ``[N]`` for classification and ``[N, k]`` targets for
    regression.
    """

    name: str
    task: str  # "classification" | "regression"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example (no batch axis)."""
        return tuple(self.x_train.shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """What the model must output per example: ``(n_classes,)`` or the target width."""
        if self.task == "classification":
            assert self.n_classes is not None
            return (self.n_classes,)
        return tuple(self.y_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, {self.task}, inputs {list(self.input_shape)}, "
                f"outputs {list(self.output_shape)}, train/val/test "
                f"{len(self.x_train)}/{len(self.x_val)}/{len(self.x_test)})")


def load_data(data: Any, *, val_split: float = 0.2, seed: int = 0,
              base_dir: str | Path = ".") -> Dataset:
    """The data set a spec's ``data`` value names.

    Args:
        data: a bundled name (``Symbol("digits")`` or ``"digits"``), or
            ``csv(path, target = "col")`` / ``npz(path)`` as a ``SymbolCall``.
        val_split: share of the non-test rows held out for validation.
        seed: seed of the split of files and of the train/val split. This is
            *not* the training seed: keep it fixed (0) so that every trial is
            scored on the same validation rows.
        base_dir: where relative file paths start (the spec file's folder).

    Raises:
        SpecError: an unknown data set, or a file that cannot be used.
    """
    if not 0 < val_split < 1:
        raise DataError(f"val_split must be a number > 0 and < 1, got {val_split!r}")
    src = _source(data, base_dir)
    if src.kind == "bundled":
        return _bundled(src.name, float(val_split), int(seed))
    if src.kind == "synthetic":
        return _synthetic(*src.args, float(val_split), int(seed))
    assert src.path is not None
    key = _file_key(src.path)
    if src.kind == "csv":
        return _csv(*key, src.args[0], float(val_split), int(seed), src.name)
    return _npz(*key, float(val_split), int(seed), src.name)


@dataclass(frozen=True)
class _Source:
    """What a ``data`` value names: its kind, its name (a file as the spec wrote it),
    the normalized arguments, and the file's path (csv and npz)."""

    kind: str  # "bundled" | "synthetic" | "csv" | "npz"
    name: str
    args: tuple[Any, ...] = ()
    path: Path | None = None


def _source(data: Any, base_dir: str | Path) -> _Source:
    """Check a ``data`` value and say what it names (a missing file is an error here)."""
    if isinstance(data, str):
        data = Symbol(data)
    if isinstance(data, Symbol):
        if data.name not in DATASETS:
            raise DataError(f"unknown data set '{data.name}'",
                            hint=suggest(data.name, DATASETS, listing="bundled data sets"))
        return _Source("bundled", data.name)
    if isinstance(data, SymbolCall) and data.name == "synthetic":
        try:  # the spec's own check, for a value that did not come from a spec
            data = check_setting("train", "data", data, None, None)  # type: ignore[arg-type]
        except SpecError as e:
            raise DataError(e.message, hint=e.hint) from None
        return _Source("synthetic", "synthetic", (data.get("shape"), data.get("classes"),
                                                  data.get("rows")))
    if isinstance(data, SymbolCall) and data.name in ("csv", "npz"):
        path = data.get("path", 0)
        if not isinstance(path, str | Path):
            raise DataError(f"{data.name}() needs a file name string first, "
                            f'like {data.name}("data.{data.name}")')
        args: tuple[Any, ...] = ()
        if data.name == "csv":
            target = data.get("target", 1)
            if not isinstance(target, str):
                raise DataError('csv() needs the target column, like csv("data.csv", '
                                'target = "label")')
            args = (target,)
        full = Path(base_dir) / Path(path).expanduser()
        if not full.is_file():
            raise DataError(f"data file not found: {full}",
                            hint=f"relative paths start at the spec file's folder ({base_dir})")
        return _Source(data.name, str(path), args, full)
    raise DataError(f"data must be a bundled data set, csv(...), npz(...) or synthetic(...), "
                    f"got {data!s}",
                    hint="bundled: " + ", ".join(DATASETS))


def _file_key(path: Path) -> tuple[str, int, int, int, int]:
    """Path, modification time, size, inode and change time: a file's identity for caches.

    The change time (which no ``os.utime`` can set back) is there so that a file
    rewritten in place with contents of the same size and its old mtime is read again.
    """
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    return (str(path.resolve()), st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


# ---- fingerprints ------------------------------------------------------------------

#: version of the bundled and synthetic generators: bump it when their rows change
DATA_VERSION = 1
_FILE_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}
_MAX_FILE_DIGESTS = 64


def fingerprint(data: Any, *, base_dir: str | Path = ".") -> str:
    """A short hex digest (16 digits) of exactly the data a spec's ``data`` value names.

    The search engine stores it with a run, so that resuming the run on data that
    changed since is noticed. It is the first 16 hex digits of the sha256 of
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"))`` where ``obj`` is:

    - ``{"data": "csv", "target": target, "sha256": <sha256 of the file's bytes>}``
      for ``csv(...)`` and ``{"data": "npz", "sha256": ...}`` for ``npz(...)``: the
      contents count, not the path or the times (a copy elsewhere has the same
      fingerprint). The file's digest is cached in the process by path, mtime,
      size, inode and change time;
    - ``{"data": name, "generation_seed": GENERATION_SEED, "version": DATA_VERSION}``
      for a bundled set, with ``"sha256"`` of scikit-learn's ``digits.csv.gz`` for
      ``digits``;
    - ``{"data": "synthetic", "shape": [...], "classes": k, "rows": n,
      "generation_seed": ..., "version": ...}`` for ``synthetic(...)``.

    Example:
        >>> fingerprint(Symbol("digits")) == fingerprint("digits")
        True

    Raises:
        DataError: an unknown data set, a missing or unreadable file.
    """
    src = _source(data, base_dir)
    obj: dict[str, Any] = {"data": src.kind if src.kind != "bundled" else src.name}
    if src.kind in ("csv", "npz"):
        assert src.path is not None
        if src.kind == "csv":
            obj["target"] = src.args[0]
        obj["sha256"] = _file_sha256(src.path, src.name)
    else:
        obj.update(generation_seed=GENERATION_SEED, version=DATA_VERSION)
        if src.kind == "synthetic":
            shape, classes, rows = src.args
            obj.update(shape=list(shape), classes=classes, rows=rows)
        elif src.name == "digits":
            obj["sha256"] = _file_sha256(Path(_digits_path()), "digits.csv.gz")
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_sha256(path: Path, shown: str) -> str:
    """The sha256 of a file's bytes, read in blocks; cached while the file is unchanged."""
    key = _file_key(path)
    digest = _FILE_DIGESTS.get(key)
    if digest is not None:
        return digest
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError as e:
        raise DataError(f"cannot read {shown}: {e.strerror or e}") from None
    if len(_FILE_DIGESTS) >= _MAX_FILE_DIGESTS:
        _FILE_DIGESTS.pop(next(iter(_FILE_DIGESTS)))
    _FILE_DIGESTS[key] = digest = h.hexdigest()
    return digest


# ---- splitting ---------------------------------------------------------------------


def split_indices(n: int, frac: float, rng: np.random.Generator,
                  labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices ``(kept, held)`` with ``round(n * frac)`` rows held out.

    With ``labels`` the split is stratified: rows are shuffled, grouped by class
    (a stable sort) and every ``n / k``-th row is held, so each class gives its
    share to within one row.
    """
    order = rng.permutation(n)
    if labels is not None:
        order = order[np.argsort(labels[order], kind="stable")]
    k = min(max(math.floor(n * frac + 0.5), 1), n - 1)
    pos = ((np.arange(k) + 0.5) * (n / k)).astype(np.int64)
    held = np.zeros(n, dtype=bool)
    held[order[pos]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def _three_way(n: int, val_split: float, seed: int, labels: np.ndarray | None,
               test: bool = True, val: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train, val and test: test 20% of all rows, val ``val_split`` of the rest."""
    rng = np.random.default_rng(seed)
    empty = np.zeros(0, dtype=np.int64)
    rest, test_idx = split_indices(n, TEST_SPLIT, rng, labels) if test else (np.arange(n), empty)
    if not val:
        return rest, empty, test_idx
    sub = labels[rest] if labels is not None else None
    train_pos, val_pos = split_indices(len(rest), val_split, rng, sub)
    return rest[train_pos], rest[val_pos], test_idx


def _standardize(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each array minus the train mean, over the train std (a constant feature: std 1)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (x_train, *others)]


def _make(name: str, x: np.ndarray, y: np.ndarray, n_classes: int | None,
          idx: tuple[np.ndarray, np.ndarray, np.ndarray], standardize: bool = False) -> Dataset:
    xs = [x[i] for i in idx]
    if standardize:
        xs = _standardize(*xs)
    ys = [y[i] for i in idx]
    return _dataset(name, xs, ys, n_classes)


def _dataset(name: str, xs: list[np.ndarray], ys: list[np.ndarray],
             n_classes: int | None) -> Dataset:
    def xt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def yt(a: np.ndarray) -> torch.Tensor:
        if n_classes is not None:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
        return torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32))

    task = "classification" if n_classes is not None else "regression"
    return Dataset(name, task, xt(xs[0]), yt(ys[0]), xt(xs[1]), yt(ys[1]), xt(xs[2]),
                   yt(ys[2]), n_classes)


# ---- bundled data sets -----------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _bundled(name: str, val_split: float, seed: int) -> Dataset:
    x, y, n_classes = _generate(name)
    idx = _three_way(len(x), val_split, seed, y if n_classes is not None else None)
    return _make(name, x, y, n_classes, idx, standardize=name == "digits")


@functools.lru_cache(maxsize=16)
def _generate(name: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """All rows of a bundled set: inputs, targets, and the class count (None: regression)."""
    rng = np.random.default_rng(GENERATION_SEED)
    return _GENERATORS[name](rng)


def _digits_path() -> str:
    """Where scikit-learn keeps its copy of the digits (``""`` when it cannot be found)."""
    spec = importlib.util.find_spec("sklearn")
    locations = spec.submodule_search_locations if spec is not None else None
    path = (os.path.join(locations[0], "datasets", "data", "digits.csv.gz")
            if locations else "")
    return path if path and os.path.isfile(path) else ""


def _digits(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """sklearn's 8x8 digits (1797 images, pixels 0-16), read from the file sklearn ships.

    Reading the file directly avoids importing sklearn.datasets (about 2 s).
    """
    path = _digits_path()
    if path:
        table = np.loadtxt(path, delimiter=",")
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # pragma: no cover - a layout change in sklearn
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise DataError("the digits data set needs scikit-learn",
                            hint="pip install scikit-learn") from e
        x, y = load_digits(return_X_y=True)
    return x.astype(np.float64), y.astype(np.int64), 10


def _kan_fit(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, None]:
    """f(x1, x2) = exp(sin(pi x1) + x2^2) on 3000 points uniform in [-1, 1]^2 (KAN paper)."""
    x = rng.uniform(-1.0, 1.0, size=(3000, 2))
    y = np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)
    return x, y.reshape(-1, 1), None


#: associative recall: pairs per sequence, key symbols, value symbols (= classes)
RECALL_PAIRS, RECALL_KEYS, RECALL_VALUES, RECALL_SIZE = 8, 16, 8, 5000


def _recall(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """5000 sequences of 8 (key, value) tokens and a query token; the answer is its value.

    Token = [one-hot key (16) | one-hot value (8)]; the query token has a key and
    no value. Keys in a sequence are distinct; values may repeat.
    """
    n, p, nk, nv = RECALL_SIZE, RECALL_PAIRS, RECALL_KEYS, RECALL_VALUES
    keys = np.argsort(rng.random((n, nk)), axis=1)[:, :p]
    values = rng.integers(0, nv, size=(n, p))
    asked = rng.integers(0, p, size=n)
    rows = np.arange(n)
    x = np.zeros((n, p + 1, nk + nv))
    pair = np.arange(p)
    x[rows[:, None], pair[None, :], keys] = 1.0
    x[rows[:, None], pair[None, :], nk + values] = 1.0
    x[rows, p, keys[rows, asked]] = 1.0
    return x, values[rows, asked], nv


def _spirals(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Two interleaved spirals, 500 points each: r = t, angle = 3.5 pi t + pi c, noise 0.02."""
    n = 500
    t = rng.uniform(0.0, 1.0, size=2 * n)
    c = np.repeat([0, 1], n)
    angle = 3.5 * np.pi * t + np.pi * c
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    return x + rng.normal(0.0, 0.02, size=x.shape), c, 2


def _moons(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """sklearn's two moons (its formula), 500 points each, Gaussian noise 0.1."""
    n = 500
    t = np.linspace(0.0, np.pi, n)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.concatenate([outer, inner])
    return x + rng.normal(0.0, 0.1, size=x.shape), np.repeat([0, 1], n), 2


#: centres of the four blobs (class k around BLOB_CENTERS[k])
BLOB_CENTERS = ((-3.0, 0.0), (3.0, 0.0), (0.0, 3.0), (0.0, -3.0))


def _blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Four isotropic Gaussian blobs of 250 points, std 1, around BLOB_CENTERS."""
    y = np.repeat(np.arange(4), 250)
    x = np.asarray(BLOB_CENTERS)[y] + rng.normal(0.0, 1.0, size=(1000, 2))
    return x, y, 4


def _xor(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """1000 points uniform in [-1, 1]^2, class (x1 > 0) xor (x2 > 0), then noise 0.1 added."""
    clean = rng.uniform(-1.0, 1.0, size=(1000, 2))
    y = ((clean[:, 0] > 0) != (clean[:, 1] > 0)).astype(np.int64)
    return clean + rng.normal(0.0, 0.1, size=clean.shape), y, 2


PARITY_BITS = 10


def _parity(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """All 2^10 patterns of 10 bits once each, as +-1 features; class = xor of the bits."""
    n = 1 << PARITY_BITS
    bits = (np.arange(n)[:, None] >> np.arange(PARITY_BITS)[None, :]) & 1
    return 2.0 * bits - 1.0, bits.sum(axis=1) % 2, 2


_GENERATORS = {"digits": _digits, "kan_fit": _kan_fit, "recall": _recall,
               "spirals": _spirals, "moons": _moons, "blobs": _blobs, "xor": _xor,
               "parity": _parity}
assert set(_GENERATORS) == set(DATASETS), "every bundled data set needs a generator"


# ---- synthetic(shape, classes, rows) ---------------------------------------------------

#: synthetic(...): the noise is set so that a nearest-class-mean classifier fit on the
#: train split sees two classes this many noise standard deviations apart
SYNTHETIC_SEPARATION = 4.0
#: synthetic(...): examples per block of generated noise (bounds the working memory)
_SYNTHETIC_BLOCK_VALUES = 1 << 20


def synthetic_templates(shape: tuple[int, ...], classes: int) -> np.ndarray:
    """The class templates of ``synthetic(shape, classes)``, ``[classes, *shape]`` float64.

    White Gaussian noise, blurred along each of the last two axes of a shape with
    two or more axes (those of size 8 or more, with a circular Gaussian of std
    size / 16: about 20 independent features per channel at any resolution),
    then scaled to a root mean square of 1 over all templates. The seed is derived
    from the shape and the class count, never from a training or split seed.
    """
    rng = np.random.default_rng([GENERATION_SEED, 1, classes, len(shape), *shape])
    t = rng.standard_normal((classes, *shape))
    if len(shape) >= 2:
        for axis in (-2, -1):
            n = shape[axis]
            if n < 8:
                continue
            freq = np.fft.fftfreq(n)
            gain = np.exp(-2.0 * (np.pi * freq * n / 16) ** 2)  # Fourier transform of the kernel
            gain = gain.reshape((n,) + (1,) * (-axis - 1))
            t = np.real(np.fft.ifft(np.fft.fft(t, axis=axis) * gain, axis=axis))
    return t / np.sqrt(np.mean(t * t))


def synthetic_noise(size: int, classes: int, rows: int) -> float:
    """The noise std (before the final scaling) of a synthetic set with ``size`` values per example.

    With ``n = 0.64 rows / classes`` train rows per class (the default split) and
    templates of unit RMS (``|t_a - t_b|^2 ~ 2 size``), a nearest-class-mean
    classifier separates two classes by ``sqrt(2 size) / (s sqrt(1 + s^2 / n))``
    noise stds (its means are off by noise of std ``s / sqrt(n)``); this solves
    that for ``s`` at :data:`SYNTHETIC_SEPARATION`.
    """
    n = 0.64 * rows / classes
    sep = SYNTHETIC_SEPARATION
    return math.sqrt(n / 2 * (math.sqrt(1 + 8 * size / (sep * sep * n)) - 1))


@functools.lru_cache(maxsize=2)  # a set may be up to 160 MB: keep few
def _synthetic(shape: tuple[int, ...], classes: int, rows: int, val_split: float,
               seed: int) -> Dataset:
    """``x = (template[y] + s * noise) / sqrt(1 + s^2)``, balanced classes, written per split.

    The rows are generated in blocks straight into their split's array, so the
    set takes its final size in memory and no more.
    """
    size = math.prod(shape)
    templates = synthetic_templates(shape, classes).reshape(classes, size).astype(np.float32)
    noise = synthetic_noise(size, classes, rows)
    scale = np.float32(1.0 / math.sqrt(1.0 + noise * noise))
    rng = np.random.default_rng([GENERATION_SEED, 2, classes, rows, len(shape), *shape])
    y = rng.permutation(np.arange(rows) % classes)
    idx = _three_way(rows, val_split, seed, y)
    split_of = np.empty(rows, dtype=np.int64)
    pos = np.empty(rows, dtype=np.int64)
    xs = []
    for s, i in enumerate(idx):
        split_of[i], pos[i] = s, np.arange(len(i))
        xs.append(np.empty((len(i), size), dtype=np.float32))
    block = max(1, _SYNTHETIC_BLOCK_VALUES // size)
    for a in range(0, rows, block):
        b = min(rows, a + block)
        x = rng.standard_normal((b - a, size), dtype=np.float32)
        x *= np.float32(noise)
        x += templates[y[a:b]]
        x *= scale
        for s in range(3):
            here = split_of[a:b] == s
            xs[s][pos[a:b][here]] = x[here]
    name = f"synthetic(shape={list(shape)}, classes={classes}, rows={rows})"
    return _dataset(name, [a.reshape(len(a), *shape) for a in xs], [y[i] for i in idx],
                    classes)


# ---- csv ---------------------------------------------------------------------------


def _number(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v


@functools.lru_cache(maxsize=8)
def _csv(full: str, mtime: int, size: int, ino: int, ctime: int, target: str,
         val_split: float, seed: int, shown: str) -> Dataset:
    try:
        with open(full, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {shown}: {e}") from None
    if not rows:
        raise DataError(f"{shown} is empty")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        if all(_number(h) is not None for h in header):
            raise DataError(f"{shown} has no header row (its first row is numbers)",
                            hint="add a first line naming the columns, like x1,x2,label")
        raise DataError(f"{shown} has no column '{target}'",
                        hint=suggest(target, header, listing="its columns are"))
    body = rows[1:]
    if len(body) < MIN_ROWS:
        raise DataError(f"{shown} has {len(body)} data rows; at least {MIN_ROWS} are needed "
                        "to split train, validation and test")
    width = len(header)
    for i, r in enumerate(body):
        if len(r) != width:
            raise DataError(f"{shown}, row {i + 2}: {len(r)} values but the header has {width} "
                            "columns")
    t = header.index(target)
    feats = [j for j in range(width) if j != t]
    if not feats:
        raise DataError(f"{shown} has no feature columns besides '{target}'")
    x = np.empty((len(body), len(feats)))
    for k, j in enumerate(feats):
        for i, r in enumerate(body):
            v = _number(r[j])
            if v is None or not math.isfinite(v):
                what = "is empty" if not r[j].strip() else f"is '{r[j].strip()}'"
                raise DataError(f"{shown}, row {i + 2}, column '{header[j]}' {what}: feature "
                                "columns must hold finite numbers",
                                hint="encode categories as numbers, fill in missing values, "
                                     "or drop the column")
            x[i, k] = v
    raw = [r[t].strip() for r in body]
    y, n_classes = _csv_target(raw, shown, target)
    idx = _three_way(len(x), val_split, seed, y if n_classes is not None else None)
    return _make(f"csv:{shown}", x, y, n_classes, idx, standardize=True)


def _csv_target(raw: list[str], shown: str, target: str) -> tuple[np.ndarray, int | None]:
    """Class indices (labels sorted: numbers by value, text alphabetically) or float targets."""
    if any(not s for s in raw):
        i = next(i for i, s in enumerate(raw) if not s)
        raise DataError(f"{shown}, row {i + 2}: the target '{target}' is empty")
    nums = [_number(s) for s in raw]
    if all(v is not None and math.isfinite(v) for v in nums):
        values = np.asarray(nums, dtype=np.float64)
        distinct = np.unique(values)
        if not (np.all(distinct == np.round(distinct)) and len(distinct) <= MAX_CSV_CLASSES):
            return values.reshape(-1, 1), None
        y = np.searchsorted(distinct, values)
    else:
        labels = sorted(set(raw))
        if len(labels) > MAX_CSV_CLASSES:
            raise DataError(f"{shown}: the target '{target}' has {len(labels)} distinct text "
                            f"values; at most {MAX_CSV_CLASSES} classes are supported",
                            hint="a regression target must hold numbers only")
        index = {s: i for i, s in enumerate(labels)}
        y = np.asarray([index[s] for s in raw])
        distinct = labels  # type: ignore[assignment]
    if len(distinct) < 2:
        raise DataError(f"{shown}: the target '{target}' has a single value; classification "
                        "needs at least 2 classes")
    return y.astype(np.int64), len(distinct)


# ---- npz ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _npz(full: str, mtime: int, size: int, ino: int, ctime: int, val_split: float, seed: int,
         shown: str) -> Dataset:
    try:
        with np.load(full, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {shown} as an .npz archive: {e}",
                        hint="write it with numpy.savez(path, x=inputs, y=targets)") from None

    def pick(*names: str, required: bool = False) -> np.ndarray | None:
        for n in names:
            if n in arrays:
                return arrays[n]
        if required:
            raise DataError(f"{shown} has no array '{names[0]}'",
                            hint=f"it has: {', '.join(sorted(arrays)) or 'no arrays'}; "
                                 "write it with numpy.savez(path, x=inputs, y=targets)")
        return None

    parts = {"": (pick("x", "X", required=True), pick("y", "Y", required=True)),
             "_val": (pick("x_val", "X_val"), pick("y_val", "Y_val")),
             "_test": (pick("x_test", "X_test"), pick("y_test", "Y_test"))}
    for suffix, (x, y) in parts.items():
        if (x is None) != (y is None):
            raise DataError(f"{shown} has {'x' if y is None else 'y'}{suffix} without "
                            f"{'y' if y is None else 'x'}{suffix}")
        if x is None or y is None:
            continue
        for name, a in ((f"x{suffix}", x), (f"y{suffix}", y)):
            if a.dtype.kind not in "biuf":
                raise DataError(f"{shown}: array '{name}' holds {a.dtype}, not numbers")
            if a.ndim == 0:
                raise DataError(f"{shown}: array '{name}' is a scalar; it needs one row per "
                                "example")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise DataError(f"{shown}: array '{name}' has NaN or infinite values")
        if len(x) != len(y):
            raise DataError(f"{shown}: x{suffix} has {len(x)} rows but y{suffix} has {len(y)}")
    x, y = parts[""]
    assert x is not None and y is not None
    given = {s: p for s, p in parts.items() if p[0] is not None}
    for s, (xs, _) in given.items():
        assert xs is not None
        if xs.shape[1:] != x.shape[1:]:
            raise DataError(f"{shown}: x{s} has examples of shape {list(xs.shape[1:])} but x "
                            f"has {list(x.shape[1:])}")
    classify = all(p[1].dtype.kind in "biu" for p in given.values())  # type: ignore[union-attr]
    if not classify and any(p[1].dtype.kind in "biu" for p in given.values()):  # type: ignore[union-attr]
        raise DataError(f"{shown}: y is integer in some arrays and float in others")
    n_classes: int | None = None
    ys = {s: p[1] for s, p in given.items()}
    if classify:
        for s, a in ys.items():
            if a.ndim > 2 or (a.ndim == 2 and a.shape[1] != 1):
                raise DataError(f"{shown}: integer y{s} (class labels) must be one label per "
                                f"row, got shape {list(a.shape)}",
                                hint="store float y for regression targets")
        distinct = np.unique(np.concatenate([a.reshape(-1) for a in ys.values()]))
        if len(distinct) < 2:
            raise DataError(f"{shown}: y has a single class; classification needs at least 2")
        ys = {s: np.searchsorted(distinct, a.reshape(-1)) for s, a in ys.items()}
        n_classes = len(distinct)
    else:
        ys = {s: a.reshape(len(a), -1) for s, a in ys.items()}
    y = ys[""]
    labels = y if n_classes is not None else None
    need = {0: MIN_ROWS, 1: 2, 2: 1}[("_val" in given) + ("_test" in given)]
    if len(x) < need:
        raise DataError(f"{shown} has {len(x)} rows in x; at least {need} are needed to "
                        "split train, validation and test")
    tr, va, te = _three_way(len(x), val_split, seed, labels, test="_test" not in given,
                            val="_val" not in given)
    xs = [x[tr], given["_val"][0] if "_val" in given else x[va],
          given["_test"][0] if "_test" in given else x[te]]
    yl = [y[tr], ys["_val"] if "_val" in ys else y[va], ys["_test"] if "_test" in ys else y[te]]
    for name, a in zip(("train", "validation", "test"), xs, strict=True):
        if len(a) == 0:
            raise DataError(f"{shown}: the {name} split is empty")
    return _dataset(f"npz:{shown}", xs, yl, n_classes)  # type: ignore[arg-type]
