"""Data sets of the `train` block: bundled tasks, `synthetic(...)`, `csv(...)` and `npz(...)`;
and your own data, :meth:`Dataset.from_tensors` and :meth:`Dataset.from_datasets`.

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

import codecs
import csv
import functools
import hashlib
import importlib.util
import io
import itertools
import json
import math
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ..compiler.settings import DATASETS, check_setting
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

#: ``progress(bytes_read, total_bytes)``, called while a large csv file is read
Progress = Callable[[int, int], None]


class DataError(CommandError):
    """The data set named by the spec cannot be used (missing file, bad column, ...).

    It prints as one line, ``error: message; hint``: the message names the file and,
    where it applies, the row (the line number in the file) and the column.
    """


#: the splits of a data set, in order
SPLITS = ("train", "val", "test")


class _SplitTensor:
    """``Dataset.x_train`` and the like: the split's tensor of an in-memory data set;
    a DataError naming the attribute for one read from torch datasets."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Dataset | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        if obj._sets is not None:
            obj.require_in_memory(f"reading {self.name}")
        return obj._tensors[self.name]

    def __set__(self, obj: Dataset, value: torch.Tensor | None) -> None:
        obj._tensors[self.name] = value


class Dataset:
    """A task's data, split three ways: float32 inputs; int64 classes or float32 targets.

    It is one of two kinds:

    - **in memory** (what :func:`load_data` gives, and :meth:`from_tensors`):
      tensors ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``,
      ``y_test``; ``y_*`` are class indices ``[N]`` for classification and
      ``[N, k]`` targets for regression; ``x_test`` and ``y_test`` are None when
      there is no test split;
    - **read from torch datasets** (:meth:`from_datasets`): the trainer batches
      map-style ``torch.utils.data.Dataset`` s of ``(x, y)`` items with a
      ``DataLoader``; nothing is loaded, and reading ``x_train`` and the like is a
      DataError.

    Both have ``name``, ``task``, ``n_classes``, ``task_reason``, ``input_shape``,
    ``output_shape``, :meth:`size`, :meth:`take` and :meth:`fingerprint`. Treat a
    Dataset as read-only (it may share memory with the arrays it was made from);
    it pickles, with its torch datasets.
    """

    x_train = _SplitTensor()
    y_train = _SplitTensor()
    x_val = _SplitTensor()
    y_val = _SplitTensor()
    x_test = _SplitTensor()
    y_test = _SplitTensor()

    def __init__(self, name: str, task: str, x_train: torch.Tensor | None,
                 y_train: torch.Tensor | None, x_val: torch.Tensor | None,
                 y_val: torch.Tensor | None, x_test: torch.Tensor | None = None,
                 y_test: torch.Tensor | None = None, n_classes: int | None = None,
                 task_reason: str = "") -> None:
        self.name = name
        self.task = task  # "classification" | "regression"
        self.n_classes = n_classes
        #: why the task is classification or regression, for messages such as "maximize(
        #: val_accuracy) needs a classification data set"
        self.task_reason = task_reason
        #: DataLoader workers of a data set read from torch datasets (0: the main process)
        self.num_workers = 0
        self._tensors: dict[str, torch.Tensor | None] = {
            "x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
            "x_test": x_test, "y_test": y_test}
        self._sets: dict[str, Any] | None = None  # split -> torch Dataset (None: in memory)
        self._items: _ItemFormat | None = None

    @classmethod
    def from_tensors(cls, x_train: Any, y_train: Any, x_val: Any, y_val: Any,
                     x_test: Any = None, y_test: Any = None, *, task: str | None = None,
                     classes: int | None = None, name: str = "tensors") -> Dataset:
        """An in-memory data set of your own arrays (torch tensors or numpy arrays).

        ``x`` becomes float32 (every value finite and within float32). Integer or
        boolean ``y`` are class labels (``[N]``, or a ``[N, 1]`` column), numbered
        0 to ``classes - 1`` (``classes`` defaults to the largest label + 1 over all
        splits); float ``y`` is a regression target (``[N]`` becomes ``[N, 1]``).
        ``task="regression"`` reads integer ``y`` as targets; ``task="classification"``
        takes float ``y`` that are whole numbers as labels. Without ``x_test`` and
        ``y_test`` there is no test split (and no test metrics).

        Example:
            >>> data = Dataset.from_tensors(x[:800], y[:800], x[800:], y[800:])
            >>> data.task, data.input_shape
            ('classification', (64,))

        Raises:
            DataError: one line naming the argument: rows that do not match, example
                shapes that differ between splits, an empty split, ``x_test`` without
                ``y_test``, a 0-d or non-numeric array, a value that is not finite, a
                label out of range, a single class.
        """
        return _from_tensors(cls, (x_train, y_train, x_val, y_val, x_test, y_test), task,
                             classes, name)

    @classmethod
    def from_datasets(cls, train: Any, val: Any, test: Any = None, *, task: str | None = None,
                      classes: int | None = None, name: str = "datasets",
                      num_workers: int = 0) -> Dataset:
        """A data set read from map-style ``torch.utils.data.Dataset`` s of ``(x, y)`` items.

        Nothing is loaded: the trainer batches them with a ``DataLoader``
        (``num_workers`` workers) in exactly the batches it would take from the
        same tensors in memory, so training gives the same numbers as
        :meth:`from_tensors`. The input shape and the task come from the first
        training item: an integer (or boolean) label is a class (``classes=`` must
        then be given: counting them would read the whole data set), a float label
        a regression target (a number is a target of width 1). Each batch is
        checked as it is read (shapes, finite inputs, labels in range).

        Example:
            >>> data = Dataset.from_datasets(TensorDataset(x, y), TensorDataset(xv, yv),
            ...                              classes=10)

        Raises:
            DataError: a split that is not a map-style dataset or is empty, a first
                item that is not an ``(x, y)`` pair, an integer label without
                ``classes=``, shapes that differ between the splits' first items.
        """
        return _from_datasets(cls, {"train": train, "val": val, "test": test}, task, classes,
                              name, num_workers)

    @property
    def in_memory(self) -> bool:
        """Whether the splits are tensors (False: read from torch datasets)."""
        return self._sets is None

    @property
    def has_test(self) -> bool:
        """Whether there is a test split."""
        return self.size("test") > 0

    def size(self, split: str) -> int:
        """The number of examples of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        if self._sets is not None:
            s = self._sets.get(split)
            return 0 if s is None else len(s)
        x = self._tensors[f"x_{split}"]
        return 0 if x is None else len(x)

    def require_in_memory(self, what: str) -> None:
        """Raise a DataError unless the splits are tensors: ``what`` needs them."""
        if self._sets is not None:
            raise DataError(f"{what} needs in-memory data (Dataset.from_tensors); data set "
                            f"'{self.name}' is read from torch datasets by a DataLoader",
                            hint="the trainer (autoarch.search.trainer.train) takes either "
                                 "kind")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example (no batch axis)."""
        if self._items is not None:
            return self._items.input_shape
        return tuple(self.x_train.shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """What the model must output per example: ``(n_classes,)`` or the target width."""
        if self.task == "classification":
            assert self.n_classes is not None
            return (self.n_classes,)
        if self._items is not None:
            assert self._items.target_shape is not None
            return self._items.target_shape
        return tuple(self.y_train.shape[1:])

    def take(self, split: str, indices: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples ``indices`` of ``split`` as a batch ``(x, y)``, like the trainer's."""
        if self._sets is None:
            return self._tensors[f"x_{split}"][indices], self._tensors[f"y_{split}"][indices]
        rows = [int(i) for i in indices]
        assert self._items is not None
        return _checked(self._items([self._sets[split][i] for i in rows]), split, rows,
                        f"data set '{self.name}'")

    def batches(self, split: str, index_batches: Sequence[Sequence[int]], *,
                generator: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches ``(x, y)`` of ``split`` made of the examples of each index list.

        From torch datasets a ``DataLoader`` reads them (``num_workers`` workers,
        ``generator`` seeding the workers' random state rather than torch's global
        one); each batch is checked as it arrives (shapes, finite inputs, labels in
        range), a bad item being a DataError naming its index.
        """
        if self._sets is None:
            x, y = self._tensors[f"x_{split}"], self._tensors[f"y_{split}"]
            assert x is not None and y is not None, split
            for rows in index_batches:
                yield x[rows], y[rows]
            return
        rows_list = [[int(i) for i in rows] for rows in index_batches]
        loader = torch.utils.data.DataLoader(
            self._sets[split], batch_sampler=rows_list, collate_fn=self._items,
            num_workers=self.num_workers,
            generator=generator if generator is not None else torch.Generator())
        prefix = f"data set '{self.name}'"
        for rows, batch in zip(rows_list, loader, strict=True):
            yield _checked(batch, split, rows, prefix)

    def fingerprint(self) -> str:
        """A 16-digit hex digest of the data (as :func:`fingerprint` gives for files).

        In memory: the sha256 over the task, the class count and each split's dtype,
        shape and bytes. From torch datasets: over the task, the class count, each
        split's class name and length, and the items at up to :data:`FINGERPRINT_ITEMS`
        evenly spaced positions of each split, so it is a *sample*: a change to an
        item between them is not noticed.
        """
        return _dataset_fingerprint(self)

    def __str__(self) -> str:
        return f"dataset({self.name})"

    def __repr__(self) -> str:
        sizes = "/".join(str(self.size(s)) for s in SPLITS if s != "test" or self.has_test)
        splits = "train/val/test" if self.has_test else "train/val"
        return (f"Dataset({self.name!r}, {self.task}, inputs {list(self.input_shape)}, "
                f"outputs {list(self.output_shape)}, {splits} {sizes}"
                + ("" if self.has_test else ", no test split")
                + ("" if self.in_memory else ", torch datasets") + ")")


def load_data(data: Any, *, val_split: float = 0.2, seed: int = 0,
              base_dir: str | Path = ".", progress: Progress | None = None) -> Dataset:
    """The data set a spec's ``data`` value names.

    Args:
        data: a bundled name (``Symbol("digits")`` or ``"digits"``), or
            ``synthetic(shape = [...], classes = k)``, ``csv(path, target = "col")`` or
            ``npz(path)`` as a ``SymbolCall``; a :class:`Dataset` of your own is
            returned as it is (its own splits: ``val_split`` and ``seed`` do not apply).
        val_split: share of the non-test rows held out for validation.
        seed: seed of the split of files and of the train/val split. This is
            *not* the training seed: keep it fixed (0) so that every trial is
            scored on the same validation rows.
        base_dir: where relative file paths start (the spec file's folder).
        progress: called as ``progress(bytes_read, total_bytes)`` while a csv file of
            at least :data:`PROGRESS_MIN_BYTES` is read, at most every
            :data:`PROGRESS_EVERY_S` seconds, and once at the end with both equal.

    Raises:
        DataError: an unknown data set, or a file that cannot be used; one line naming
            the file and, where it applies, the row (line number) and the column.
    """
    if isinstance(data, Dataset):  # your own data: its own splits (val_split unused)
        return data
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
        return _csv_cached((*key, src.args[0], float(val_split), int(seed), src.name), progress)
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
        full = data_file(data, base_dir)
        assert full is not None
        if not full.is_file():
            raise DataError(f"data file not found: {full}",
                            hint=None if Path(path).expanduser().is_absolute() else
                            f"relative paths start at the spec file's folder ({base_dir})")
        return _Source(data.name, str(path), args, full)
    raise DataError(f"data must be a bundled data set, csv(...), npz(...) or synthetic(...), "
                    f"got {data!s}",
                    hint="bundled: " + ", ".join(DATASETS))


def data_file(data: Any, base_dir: str | Path = ".") -> Path | None:
    """The file a ``csv(...)`` or ``npz(...)`` value names, whether or not it exists
    (None for other data sets)."""
    if isinstance(data, SymbolCall) and data.name in ("csv", "npz"):
        path = data.get("path", 0)
        if isinstance(path, str | Path):
            return Path(base_dir) / Path(path).expanduser()
    return None


def with_data_file(data: Any, path: str | Path) -> Any:
    """A ``csv(...)`` or ``npz(...)`` value that reads ``path`` instead of its own file
    (the same target and settings): how a Ray worker reads a copy of the driver's file."""
    assert isinstance(data, SymbolCall) and data.name in ("csv", "npz"), data
    if any(k == "path" for k, _ in data.kwargs):
        return SymbolCall(data.name, data.args, tuple((k, str(path) if k == "path" else v)
                                                      for k, v in data.kwargs))
    return SymbolCall(data.name, (str(path), *data.args[1:]), data.kwargs)


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
      "generation_seed": ..., "version": ...}`` for ``synthetic(...)``;
    - a :class:`Dataset` of your own: its :meth:`Dataset.fingerprint`.

    Example:
        >>> fingerprint(Symbol("digits")) == fingerprint("digits")
        True

    Raises:
        DataError: an unknown data set, a missing or unreadable file.
    """
    if isinstance(data, Dataset):
        return data.fingerprint()
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


# ---- your own data: Dataset.from_tensors and Dataset.from_datasets -----------------

#: items of each split of a data set read from torch datasets that its fingerprint reads
FINGERPRINT_ITEMS = 64
_FROM_TENSORS = "Dataset.from_tensors"
_FROM_DATASETS = "Dataset.from_datasets"
_TASKS = ("classification", "regression")


def _check_arguments(where: str, name: Any, task: Any, classes: Any) -> None:
    if not isinstance(name, str) or not name or not name.isprintable() or len(name) > 100:
        raise DataError(f"{where}: name must be a string of 1 to 100 printable characters, "
                        f"got {name!r}")
    if task is not None and task not in _TASKS:
        raise DataError(f"{where}: task must be 'classification', 'regression' or None (from "
                        f"the labels' dtype), got {task!r}")
    if classes is None:
        return
    if isinstance(classes, bool) or not isinstance(classes, int | np.integer):
        raise DataError(f"{where}: classes must be an integer, got {classes!r}")
    if task == "regression":
        raise DataError(f"{where}: classes={classes} is for classification, but "
                        "task='regression'")
    if classes < 2:
        raise DataError(f"{where}: classes={classes}; classification needs at least 2 classes")


def _as_array(a: Any, arg: str, where: str) -> np.ndarray:
    """``a`` (a tensor, an array or what ``numpy.asarray`` takes) as a numeric numpy array
    of at least one axis, sharing its memory where it can."""
    if isinstance(a, torch.Tensor):
        t = a.detach().cpu()
        if t.is_complex():
            raise DataError(f"{where}: {arg} holds {t.dtype}, not real numbers")
        try:
            arr = t.numpy()
        except (TypeError, RuntimeError):  # bfloat16 and the like: no numpy dtype
            arr = (t.float() if t.is_floating_point() else t.long()).numpy()
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: {arg} is a {type(a).__name__} that is not an array "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                            ) from None
    if arr.dtype.kind not in "biuf":
        what = "not real numbers" if arr.dtype.kind == "c" else "not numbers"
        raise DataError(f"{where}: {arg} holds {arr.dtype}, {what}",
                        hint="pass a tensor or numpy array of numbers")
    if arr.ndim == 0:
        raise DataError(f"{where}: {arg} is a 0-d array (a single number); it needs one row "
                        "per example")
    return arr


def _shared_tensor(a: np.ndarray, dtype: Any) -> torch.Tensor:
    """``a`` as a tensor of ``dtype``, sharing memory where the dtype and layout allow."""
    with warnings.catch_warnings():  # a read-only array (np.load(mmap_mode="r")): never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))


def _from_tensors(cls: type[Dataset], given: tuple[Any, ...], task: str | None,
                  classes: int | None, name: str) -> Dataset:
    where = _FROM_TENSORS
    _check_arguments(where, name, task, classes)
    x_test, y_test = given[4], given[5]
    if (x_test is None) != (y_test is None):
        has, lacks = ("x_test", "y_test") if y_test is None else ("y_test", "x_test")
        raise DataError(f"{where}: {has} is given without {lacks}",
                        hint="give both for a test split, or neither for none")
    splits = SPLITS if x_test is not None else SPLITS[:2]
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    for i, s in enumerate(splits):
        x = _as_array(given[2 * i], f"x_{s}", where)
        y = _as_array(given[2 * i + 1], f"y_{s}", where)
        if len(x) != len(y):
            raise DataError(f"{where}: x_{s} has {len(x)} rows but y_{s} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{where}: x_{s} has no rows",
                            hint="leave out x_test and y_test for no test split" if s == "test"
                            else "every split needs examples")
        if s != "train" and x.shape[1:] != xs["train"].shape[1:]:
            raise DataError(f"{where}: x_{s} has examples of shape {list(x.shape[1:])} but "
                            f"x_train has {list(xs['train'].shape[1:])}")
        if x.dtype.kind == "f":
            _check_float32(x, f"x_{s}", where)
        xs[s], ys[s] = x, y
    integer = {s: y.dtype.kind in "biu" for s, y in ys.items()}
    kind = {s: "booleans" if y.dtype.kind == "b" else "integers" if integer[s] else "floats"
            for s, y in ys.items()}
    if task is None:
        odd = [s for s in splits if integer[s] != integer["train"]]
        if odd:
            raise DataError(f"{where}: y_train holds {kind['train']} ({ys['train'].dtype}) but "
                            f"y_{odd[0]} holds {kind[odd[0]]} ({ys[odd[0]].dtype})",
                            hint="give every split labels of one kind, or say task="
                                 "'classification' or task='regression'")
        task = "classification" if integer["train"] else "regression"
        reason = (f"y_train holds {kind['train']} ({ys['train'].dtype}), so " +
                  ("its labels are read as classes" if integer["train"] else
                   "it is read as a regression target; pass integer labels (or task="
                   "'classification') for classes"))
    else:
        reason = f"task='{task}' was given to {where}"
    if task == "regression":
        targets = _regression_targets(ys, where)
        return cls(name, task, *_interleave(xs, targets, splits, np.float32), None, reason)
    labels, n_classes = _class_labels(ys, classes, where)
    return cls(name, task, *_interleave(xs, labels, splits, np.int64), n_classes, reason)


def _interleave(xs: dict[str, np.ndarray], ys: dict[str, np.ndarray], splits: tuple[str, ...],
                y_dtype: Any) -> list[torch.Tensor | None]:
    """x_train, y_train, x_val, y_val, x_test, y_test as tensors (None: no test split)."""
    out: list[torch.Tensor | None] = []
    for s in SPLITS:
        if s in splits:
            out += [_shared_tensor(xs[s], np.float32), _shared_tensor(ys[s], y_dtype)]
        else:
            out += [None, None]
    return out


def _regression_targets(ys: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Each split's targets as ``[N, k]`` (``[N]`` becomes ``[N, 1]``), checked."""
    width = {s: y.shape[1:] if y.ndim > 1 else (1,) for s, y in ys.items()}
    out = {}
    for s, y in ys.items():
        if width[s] != width["train"]:
            raise DataError(f"{where}: y_{s} has targets of shape {list(width[s])} but y_train "
                            f"has {list(width['train'])}")
        if y.dtype.kind == "f":
            _check_float32(y, f"y_{s}", where)
        out[s] = y.reshape(len(y), -1)
    return out


def _class_labels(ys: dict[str, np.ndarray], classes: int | None,
                  where: str) -> tuple[dict[str, np.ndarray], int]:
    """Each split's labels as ``[N]``, checked to be whole numbers 0 to ``classes - 1``;
    and the class count (given, or the largest label + 1)."""
    flat = {}
    for s, y in ys.items():
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise DataError(f"{where}: y_{s} holds class labels, one per row, but has shape "
                            f"{list(y.shape)}",
                            hint="pass float targets, or task='regression', for regression")
        y = y.reshape(-1)
        if y.dtype.kind == "f":
            bad = ~(y == np.round(y))  # also nan
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(f"{where}: array 'y_{s}' at index [{i}] is {float(y[i]):g}: "
                                "class labels must be whole numbers",
                                hint="pass integer labels, or task='regression' for targets")
        flat[s] = y
    low = min(float(y.min()) for y in flat.values())
    high = max(float(y.max()) for y in flat.values())
    n_classes = int(classes) if classes is not None else int(high) + 1
    for s, y in flat.items():
        bad = (y < 0) | (y >= n_classes)
        if bad.any():
            i = int(np.argmax(bad))
            limit = (f"classes={n_classes}" if classes is not None else
                     "labels start at 0")
            raise DataError(f"{where}: array 'y_{s}' at index [{i}] is {y[i]:g}, not a class "
                            f"label 0 to {n_classes - 1} ({limit})",
                            hint="number the classes 0, 1, ..." if classes is None else
                            "raise classes=, or renumber the labels")
    if low == high:
        raise DataError(f"{where}: y holds a single class ({low:g}); classification needs at "
                        "least 2")
    return {s: y.astype(np.int64) for s, y in flat.items()}, n_classes


@dataclass(frozen=True)
class _BadItem:
    """An item of a batch that cannot be used: its position in the batch and why.

    Returned rather than raised, so that a DataLoader worker hands it back to the
    main process, which raises it as one line (a worker's exception comes back as
    a traceback text)."""

    pos: int
    message: str


@dataclass(frozen=True)
class _ItemFormat:
    """How the ``(x, y)`` items of torch datasets become a batch, like the in-memory splits:
    x float32 ``[B, *input_shape]``; y int64 class labels ``[B]`` (classification:
    ``target_shape`` None) or float32 targets ``[B, *target_shape]``. It is the
    DataLoader's ``collate_fn``; a bad item gives a :class:`_BadItem`."""

    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None
    classes: int | None

    def __call__(self, items: list[Any]) -> tuple[torch.Tensor, torch.Tensor] | _BadItem:
        xs, ys = [], []
        for pos, item in enumerate(items):
            if not isinstance(item, tuple | list) or len(item) != 2:
                return _BadItem(pos, f"is a {type(item).__name__}, not an (x, y) pair")
            x, why = _item_tensor(item[0], "x")
            if x is None:
                return _BadItem(pos, why)
            if tuple(x.shape) != self.input_shape:
                return _BadItem(pos, f"has x of shape {list(x.shape)}, but the first training "
                                     f"item's is {list(self.input_shape)}")
            y, why = _item_tensor(item[1], "y")
            if y is None:
                return _BadItem(pos, why)
            if self.target_shape is None:
                y, why = self._label(y)
                if y is None:
                    return _BadItem(pos, why)
            else:
                if y.numel() != self.target_shape[0]:
                    return _BadItem(pos, f"has a target of {y.numel()} values, but the first "
                                         f"training item's has {self.target_shape[0]}")
                y = y.reshape(-1).to(torch.float32)
            xs.append(x.to(torch.float32))
            ys.append(y)
        return torch.stack(xs), torch.stack(ys)

    def _label(self, y: torch.Tensor) -> tuple[torch.Tensor | None, str]:
        assert self.classes is not None
        if y.numel() != 1 or y.dim() > 1:
            return None, f"has a label of shape {list(y.shape)}, not one class number"
        y = y.reshape(())
        if y.is_floating_point() and not bool(y == y.round()):
            return None, f"has label {float(y):g}: class labels must be whole numbers"
        if not 0 <= float(y) < self.classes:
            return None, (f"has label {float(y):g}, not a class 0 to {self.classes - 1} "
                          f"(classes={self.classes})")
        return y.to(torch.int64), ""


def _item_tensor(v: Any, what: str) -> tuple[torch.Tensor | None, str]:
    """An item's x or y as a tensor (None and why, for one that is not finite numbers)."""
    if isinstance(v, torch.Tensor):
        t = v.detach()
        if t.is_complex():
            return None, f"has {what} of {t.dtype}, not real numbers"
    else:
        try:
            arr = np.asarray(v)
        except (TypeError, ValueError):
            return None, f"has {what} of type {type(v).__name__}, not numbers"
        if arr.dtype.kind not in "biuf":
            return None, f"has {what} of type {type(v).__name__} ({arr.dtype}), not numbers"
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if t.is_floating_point():
        bad = ~(t.abs() <= FLOAT32_MAX)  # also nan
        if bool(bad.any()):
            where = [int(i) for i in np.unravel_index(int(bad.reshape(-1).int().argmax()),
                                                      tuple(t.shape))]
            v = float(t[tuple(where)])
            return None, (f"has {what} {v:g} at index {where}: values must be finite numbers "
                          "within float32")
    return t, ""


def _checked(batch: tuple[torch.Tensor, torch.Tensor] | _BadItem, split: str,
             rows: list[int], prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch, or the DataError of its bad item, named by its index in ``split``."""
    if isinstance(batch, _BadItem):
        raise DataError(f"{prefix}: {split} item {rows[batch.pos]} {batch.message}",
                        hint="items must be (x, y) pairs like the first training item")
    return batch


def _from_datasets(cls: type[Dataset], sets: dict[str, Any], task: str | None,
                   classes: int | None, name: str, num_workers: int) -> Dataset:
    where = _FROM_DATASETS
    _check_arguments(where, name, task, classes)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise DataError(f"{where}: num_workers must be an integer >= 0, got {num_workers!r}")
    for s, d in sets.items():
        if d is None and s != "test":
            raise DataError(f"{where}: {s} must be a torch.utils.data.Dataset, got None")
        if d is None:
            continue
        if isinstance(d, torch.utils.data.IterableDataset):
            raise DataError(f"{where}: {s} is an IterableDataset; a map-style dataset (with "
                            "__getitem__ and __len__) is needed",
                            hint="the trainer shuffles the examples by index every epoch")
        if isinstance(d, Dataset):
            raise DataError(f"{where}: {s} is an autoarch Dataset, not a torch.utils.data."
                            "Dataset", hint="pass it to the trainer as it is")
        if not (hasattr(d, "__getitem__") and hasattr(d, "__len__")):
            raise DataError(f"{where}: {s} is a {type(d).__name__}, not a map-style dataset "
                            "(with __getitem__ and __len__)")
        if len(d) == 0:
            raise DataError(f"{where}: {s} is empty",
                            hint="leave out test for no test split" if s == "test" else
                            "every split needs examples")
    first = sets["train"][0]
    if not isinstance(first, tuple | list) or len(first) != 2:
        raise DataError(f"{where}: the first item of train is a {type(first).__name__}, not "
                        "an (x, y) pair", hint="items must be (input, label) pairs, as "
                                               "TensorDataset(x, y) gives")
    x, why = _item_tensor(first[0], "x")
    y, why_y = _item_tensor(first[1], "y")
    if x is None or y is None:
        raise DataError(f"{where}: the first item of train {why or why_y}")
    integer = not y.is_floating_point()
    kind = ("a boolean" if y.dtype == torch.bool else "an integer" if integer else "a float")
    reason = (f"task='{task}' was given to {where}" if task is not None else
              f"the first training item's label is {kind} ({y.dtype}), so "
              + ("it is read as a class" if integer else "it is read as a regression target"))
    task = task or ("classification" if integer else "regression")
    if task == "classification":
        if classes is None:
            raise DataError(f"{where}: the first training item's label is {kind}, so the task "
                            "is classification, and classes= must be given: counting the "
                            "classes would read every item of the data set (a full pass)",
                            hint="like Dataset.from_datasets(train, val, classes=10); or "
                                 "task='regression' for integer targets")
        target_shape = None
    else:
        if y.numel() == 0:
            raise DataError(f"{where}: the first training item's target is empty")
        target_shape = (y.numel(),)
    items = _ItemFormat(tuple(x.shape), target_shape, int(classes) if classes is not None
                        else None)
    for s, d in sets.items():  # every split's first item, checked as a batch is
        if d is not None:
            _checked(items([d[0]]), s, [0], where)
    data = cls(name, task, None, None, None, None, None, None, items.classes, reason)
    data._sets = {s: d for s, d in sets.items() if d is not None}
    data._items = items
    data.num_workers = num_workers
    return data


def _dataset_fingerprint(data: Dataset) -> str:
    obj: dict[str, Any] = {"data": "tensors" if data.in_memory else "datasets",
                           "task": data.task, "n_classes": data.n_classes}
    if data._sets is None:
        for key, t in data._tensors.items():
            obj[key] = None if t is None else {"dtype": str(t.dtype), "shape": list(t.shape),
                                               "sha256": _tensor_sha256(t)}
    else:
        obj["input_shape"] = list(data.input_shape)
        obj["output_shape"] = list(data.output_shape)
        for s in SPLITS:
            d = data._sets.get(s)
            if d is None:
                obj[s] = None
                continue
            n, k = len(d), FINGERPRINT_ITEMS
            rows = list(range(n)) if n <= k else [i * (n - 1) // (k - 1) for i in range(k)]
            x, y = data.take(s, rows)
            obj[s] = {"class": f"{type(d).__module__}.{type(d).__qualname__}", "length": n,
                      "items": rows, "x_sha256": _tensor_sha256(x),
                      "y_sha256": _tensor_sha256(y)}
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tensor_sha256(t: torch.Tensor) -> str:
    """The sha256 of a tensor's bytes (row-major), for any dtype."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(flat.view(torch.uint8).numpy()).hexdigest()


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
    task = (f"classification set of {n_classes} classes" if n_classes is not None
            else "regression set")
    return _dataset(name, xs, ys, n_classes, f"'{name}' is a bundled {task}")


def _dataset(name: str, xs: list[np.ndarray], ys: list[np.ndarray],
             n_classes: int | None, reason: str) -> Dataset:
    def xt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def yt(a: np.ndarray) -> torch.Tensor:
        if n_classes is not None:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
        return torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32))

    task = "classification" if n_classes is not None else "regression"
    return Dataset(name, task, xt(xs[0]), yt(ys[0]), xt(xs[1]), yt(ys[1]), xt(xs[2]),
                   yt(ys[2]), n_classes, reason)


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
                    classes, f"{name} is a classification task of {classes} classes")


# ---- csv ---------------------------------------------------------------------------

#: the largest finite float32: a value beyond it would become inf in the tensors
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: target cells that mean "no value", compared stripped and in lower case
MISSING_MARKERS = frozenset({"", "nan", "na", "n/a", "#n/a", "null", "none", "?", "-", "inf",
                             "+inf", "-inf", "infinity", "+infinity", "-infinity"})
#: files at least this large report their reading progress
PROGRESS_MIN_BYTES = 20_000_000
#: seconds between two progress reports
PROGRESS_EVERY_S = 0.25
#: most columns a csv file may have
MAX_CSV_COLUMNS = 100_000
#: feature values the row-by-row reader keeps before storing them as an array
_CSV_BLOCK_VALUES = 1 << 16
#: characters of lines read at a time
_CSV_BLOCK_CHARS = 1 << 20
#: how much of a file's start is checked for binary content before parsing
_SNIFF_BYTES = 1 << 16


def quote_cell(text: str, limit: int = 20) -> str:
    """A file's cell as a message may show it: quoted, at most ``limit`` characters, with
    control and other unprintable characters escaped (``'\\x1b[2J'``), never raw."""
    text = text.strip()
    cut = text[:limit]
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                    for c in cut)
    return f"'{shown}{'...' if len(text) > limit else ''}'"


def _columns_hint(names: list[str], target: str) -> str:
    """Closest column names, and the list when the first row looks like a header: 2 to 50
    short, printable names. Anything else (a file that is not a csv) is not echoed."""
    if 2 <= len(names) <= 50 and all(0 < len(n) <= 30 and n.isprintable() for n in names):
        return suggest(target, names, listing="its columns are") or ""
    return (f"its first line has {len(names)} cell{'s' if len(names) != 1 else ''} that do "
            "not look like column names; the first line of a csv file must name the columns")


def _csv_cached(key: tuple[Any, ...], progress: Progress | None) -> Dataset:
    """``_csv`` through a small cache (its key holds the file's identity and the settings)."""
    data = _CSV_CACHE.pop(key, None)
    if data is None:
        data = _csv(*key, progress=progress)
        if len(_CSV_CACHE) >= 8:
            _CSV_CACHE.pop(next(iter(_CSV_CACHE)))
    _CSV_CACHE[key] = data
    return data


_CSV_CACHE: dict[tuple[Any, ...], Dataset] = {}


def _csv(full: str, mtime: int, size: int, ino: int, ctime: int, target: str,
         val_split: float, seed: int, shown: str, *, progress: Progress | None = None
         ) -> Dataset:
    table = _CsvReader(full, size, shown, target, progress).read()
    y, n_classes, reason = table.resolve_target()
    idx = _three_way(len(y), val_split, seed, y if n_classes is not None else None)
    xs = table.standardized(idx)
    ys = [y[i] for i in idx]
    return _dataset(f"csv:{shown}", xs, ys, n_classes, reason)


class _CsvReader:
    """Reads a csv file a block of lines at a time, checking each row as it comes: the first
    bad row fails with its line number (blank lines and quoted line breaks count).

    A block of about a megabyte without quotes goes through ``numpy.loadtxt`` (the
    fast path); anything it does not take exactly (quotes, blank lines, a bad or
    unusual cell, the first block) goes row by row through ``csv.reader``, which
    also finds and names the first bad row. Both parse numbers as ``float`` does.
    Features go to a growing float64 array, the target to a float64 array of
    numbers or of text-label codes, and each row's line number beside them.
    """

    def __init__(self, full: str, size: int, shown: str, target: str,
                 progress: Progress | None) -> None:
        self.full, self.size, self.shown, self.target = full, size, shown, target
        self.progress = progress if size >= PROGRESS_MIN_BYTES else None
        self.n = 0  # rows stored
        self.next_line = 1  # the line number of the next line read from the file
        self.chars = 0  # characters of the lines read (to estimate the rows still to come)
        self.block: list[float] = []  # features of the rows read and not stored yet
        self.block_target: list[float] = []
        self.block_lines: list[int] = []
        self.labels: dict[str, int] = {}  # text label -> code
        self.kind: str | None = None  # "number" or "text": the first row's target
        self.first: tuple[int, str] = (0, "")  # line and cell of the first target
        self.x = np.empty((0, 0))
        self.y = np.empty(0)
        self.lines = np.empty(0, dtype=np.int64)
        self.names: list[str] = []
        self.t = 0  # the target's column
        self.raw: Any = None
        self.text: Any = None
        self.last_report = 0.0

    # -- reading

    def read(self) -> _CsvReader:
        try:
            with open(self.full, "rb") as raw:
                self.raw = raw
                self._sniff(raw)
                self.text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                try:
                    self._header()
                    self._body()
                except UnicodeDecodeError:
                    raise DataError(f"{self.shown} is not a text csv file: line "
                                    f"{self.next_line} holds bytes that are not UTF-8 text",
                                    hint="save it as UTF-8 csv") from None
        except OSError as e:
            raise DataError(f"cannot read {self.shown}: {e.strerror or e}") from None
        except MemoryError:
            raise DataError(f"{self.shown} is too large to load into memory "
                            f"({self.size / 1e6:,.0f} MB)") from None
        if self.progress is not None:
            self.progress(self.size, self.size)
        return self

    def _sniff(self, raw: Any) -> None:
        """A file whose start holds NUL bytes or is not UTF-8 is binary: say so, show nothing."""
        head = raw.read(_SNIFF_BYTES)
        raw.seek(0)
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _SNIFF_BYTES)
            binary = b"\0" in head
        except UnicodeDecodeError:
            binary = True
        if binary:
            raise DataError(f"{self.shown} is not a text csv file (it holds NUL bytes or "
                            "bytes that are not UTF-8 text)",
                            hint="csv() reads UTF-8 text with a header line; "
                                 "use npz() for numpy arrays")

    def _line(self, line: str) -> str:
        if "\0" in line:
            raise DataError(f"{self.shown} is not a text csv file: line {self.next_line} holds "
                            "NUL bytes", hint="csv() reads UTF-8 text with a header line")
        self.next_line += 1
        self.chars += len(line)
        return line

    def _more_lines(self) -> Any:
        """The file's next lines, one at a time (for a row that goes on past its block)."""
        while line := self.text.readline():
            yield self._line(line)

    def _records(self, lines: Any, start: int) -> Any:
        """``(line number, cells)`` of each csv record of ``lines``, the first at ``start``."""
        reader = csv.reader(lines)
        prev = 0
        try:
            for cells in reader:
                yield start + prev, cells, reader.line_num
                prev = reader.line_num
        except csv.Error as e:
            raise DataError(f"{self.shown}, row {start + prev}: not valid csv ({e})") from None

    def _header(self) -> None:
        """Read and check the header: the column names and the target's column."""
        records = self._records(self._more_lines(), 1)
        for line, cells, _ in records:  # noqa: B007 - the header is the first non-blank row
            if any(c.strip() for c in cells):
                break
        else:
            raise DataError(f"{self.shown} is empty",
                            hint="a csv file needs a line naming the columns, then data rows")
        row = f"{self.shown}, row {line}"
        names = self.names = [c.strip() for c in cells]
        if len(names) > MAX_CSV_COLUMNS:
            raise DataError(f"{row}: {len(names):,} columns; at most {MAX_CSV_COLUMNS:,} are "
                            "supported")
        if self.target not in names and all(_number(c) is not None for c in names):
            raise DataError(f"{self.shown} has no header row (its first row is numbers)",
                            hint="add a first line naming the columns, like x1,x2,label")
        seen: dict[str, int] = {}
        for j, name in enumerate(names):
            if not name:
                raise DataError(f"{row}: column {j + 1} has no name; every column needs "
                                "one", hint="name it, or remove the column")
            if name in seen:
                raise DataError(f"{row}: columns {seen[name] + 1} and {j + 1} are both named "
                                f"{quote_cell(name)}; every column needs its own name",
                                hint="rename one of them (a duplicated target column would "
                                     "pass its labels to the model as a feature)")
            seen[name] = j
        if self.target not in seen:
            raise DataError(f"{self.shown} has no column {quote_cell(self.target)}",
                            hint=_columns_hint(names, self.target))
        if len(names) == 1:
            raise DataError(f"{self.shown} has no feature columns besides "
                            f"{quote_cell(self.target)}")
        self.t = seen[self.target]
        self.feature_names = [n for n in names if n != self.target]
        features = len(names) - 1
        self.per_block = max(1, _CSV_BLOCK_VALUES // features)
        self.x = np.empty((self.per_block, features))
        self.y = np.empty(self.per_block)
        self.lines = np.empty(self.per_block, dtype=np.int64)

    def _body(self) -> None:
        while block := self.text.readlines(_CSV_BLOCK_CHARS):
            start = self.next_line
            if not self._fast(block, start):
                self._slow(block, start)
        self._flush()

    def _fast(self, block: list[str], start: int) -> bool:
        """Store a block through ``numpy.loadtxt``; False (nothing stored) where it cannot
        take the block exactly as ``csv.reader`` and ``float`` would."""
        if self.kind is None or len(block) < 2:
            return False
        joined = "".join(block)
        width, t = len(self.names), self.t
        if '"' in joined or "\0" in joined or joined.count(",") != len(block) * (width - 1):
            return False  # loadtxt's usecols would drop surplus columns unseen
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # loadtxt warns about an empty block
                if self.kind == "number":
                    table = np.loadtxt(block, delimiter=",", comments=None, ndmin=2)
                    if table.shape != (len(block), width):
                        return False  # blank lines are skipped by loadtxt
                    y = table[:, t]
                    x = np.delete(table, t, axis=1)
                else:
                    x = np.loadtxt(block, delimiter=",", comments=None, ndmin=2,
                                   usecols=[j for j in range(width) if j != t])
                    cells = np.loadtxt(block, delimiter=",", comments=None, ndmin=1,
                                       usecols=t, dtype=str)
                    if x.shape[0] != len(block) or len(cells) != len(block):
                        return False
                    y = self._codes(cells)
                    if y is None:
                        return False
        except ValueError:
            return False  # a bad cell or row: the row-by-row reader names it
        if not (np.abs(x) <= FLOAT32_MAX).all() or not (np.abs(y) <= FLOAT32_MAX).all():
            return False
        self._flush()
        self.next_line += len(block)
        self.chars += len(joined)
        self._store(x, y, np.arange(start, start + len(block), dtype=np.int64))
        return True

    def _codes(self, cells: np.ndarray) -> np.ndarray | None:
        """Text-label codes of a block's targets; None when one is missing, a number or
        a label past the limit (the row-by-row reader then names the row)."""
        distinct, inverse = np.unique(cells, return_inverse=True)
        codes = np.empty(len(distinct))
        for i, raw in enumerate(distinct.tolist()):
            s = raw.strip()
            code = self.labels.get(s)
            if code is None:
                if (s.lower() in MISSING_MARKERS or _number(s) is not None
                        or len(self.labels) >= MAX_CSV_CLASSES):
                    return None
                code = self.labels[s] = len(self.labels)
            codes[i] = code
        return codes[inverse.reshape(-1)]

    def _slow(self, block: list[str], start: int) -> None:
        """Read the rows that start in ``block`` with ``csv.reader`` (a row whose quoted
        field goes on past the block reads on from the file)."""
        width, t = len(self.names), self.t
        buffer, buffer_target, buffer_lines = self.block, self.block_target, self.block_lines
        labels, missing = self.labels, MISSING_MARKERS
        self.next_line = start
        lines = itertools.chain(map(self._line, block), self._more_lines())
        for line, cells, used in self._records(lines, start):
            if len(cells) != width:
                if not any(c.strip() for c in cells):
                    if used >= len(block):
                        break
                    continue  # a blank line
                self._flush()
                end = start + used - 1
                if end > line:  # a quoted value took in line breaks
                    raise DataError(f"{self.shown}, row {line} (lines {line} to {end}): "
                                    f"{len(cells)} values but the header has {width} columns",
                                    hint="a quoted value runs over several lines: look for an "
                                         f"unclosed quote (\") in row {line}")
                raise DataError(f"{self.shown}, row {line}: {len(cells)} values but the header "
                                f"has {width} columns",
                                hint="every row needs one value per column")
            cell = cells.pop(t)
            k = len(buffer)
            try:
                buffer.extend(map(float, cells))
            except ValueError:
                del buffer[k:]
                self._flush()
                if not cell.strip() and not any(c.strip() for c in cells):
                    if used >= len(block):
                        break
                    continue  # a row of empty cells (",,,"): blank
                self._bad_feature(line, cells)
            s = cell.strip()
            if s.lower() in missing:
                del buffer[k:]
                self._flush()
                raise DataError(f"{self.shown}, row {line}, column {quote_cell(self.target)}: "
                                f"the target is missing ({quote_cell(s) if s else 'empty'}); "
                                "every row needs a target",
                                hint="fill it in or drop the row")
            try:
                v = float(s)
                kind = "number"
            except ValueError:
                kind = "text"
            if kind != self.kind:
                if self.kind is None:
                    self.kind, self.first = kind, (line, s)
                else:
                    del buffer[k:]
                    self._flush()
                    self._mixed(line, s)
            if kind == "text":
                code = labels.get(s)
                if code is None:
                    if len(labels) >= MAX_CSV_CLASSES:
                        del buffer[k:]
                        self._flush()
                        raise DataError(
                            f"{self.shown}, row {line}, column {quote_cell(self.target)}: "
                            f"{quote_cell(s)} is text label number {len(labels) + 1}; at most "
                            f"{MAX_CSV_CLASSES} classes are supported",
                            hint="a regression target must hold numbers only")
                    code = labels[s] = len(labels)
                v = code
            buffer_target.append(v)
            buffer_lines.append(line)
            if len(buffer_lines) >= self.per_block:
                self._flush()
            if used >= len(block):
                break
        self._flush()

    def _flush(self) -> None:
        """Store the rows the row-by-row reader has read since the last flush."""
        if not self.block_lines:
            return
        m = len(self.block_lines)
        x = np.array(self.block, dtype=np.float64).reshape(m, -1)
        y = np.array(self.block_target, dtype=np.float64)
        lines = np.array(self.block_lines, dtype=np.int64)
        self.block.clear()
        self.block_target.clear()
        self.block_lines.clear()
        self._store(x, y, lines)

    def _store(self, x: np.ndarray, y: np.ndarray, lines: np.ndarray) -> None:
        """Check rows (every value finite and within float32) and append them."""
        m = len(lines)
        bad_x = ~(np.abs(x) <= FLOAT32_MAX)  # also nan
        bad_y = ~(np.abs(y) <= FLOAT32_MAX) if self.kind == "number" else np.zeros(m, bool)
        if bad_x.any() or bad_y.any():
            self._out_of_range(x, y, lines, bad_x, bad_y)
        if self.n + m > len(self.x):
            self._grow(self.n + m)
        self.x[self.n:self.n + m] = x
        self.y[self.n:self.n + m] = y
        self.lines[self.n:self.n + m] = lines
        self.n += m
        if self.progress is not None:
            now = time.monotonic()
            if now - self.last_report >= PROGRESS_EVERY_S:
                self.last_report = now
                self.progress(min(self.raw.tell(), self.size), self.size)

    def _grow(self, need: int) -> None:
        """Make room for ``need`` rows: about as many as the file holds, by its bytes per row
        so far (room never written to costs address space, not memory)."""
        estimate = int(self.size / max(self.chars, 1) * need * 1.1) + self.per_block
        # a row takes at least two bytes a column (a digit and a comma or line break)
        estimate = min(estimate, self.size // (2 * len(self.names)) + self.per_block)
        capacity = max(need, estimate, int(len(self.x) * 1.5))
        for attr in ("x", "y", "lines"):
            old = getattr(self, attr)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, attr, new)

    # -- errors

    def _column(self, j: int) -> str:
        """The name of feature ``j`` (features are the columns without the target)."""
        return quote_cell(self.feature_names[j])

    def _bad_feature(self, line: int, cells: list[str]) -> None:
        for j, c in enumerate(cells):
            if _number(c) is None:
                what = "is empty" if not c.strip() else f"is {quote_cell(c)}"
                raise DataError(f"{self.shown}, row {line}, column {self._column(j)} {what}: "
                                "feature columns must hold finite numbers",
                                hint="encode categories as numbers, fill in missing values, "
                                     "or drop the column")
        raise AssertionError("a feature failed to parse, then parsed")  # pragma: no cover

    def _mixed(self, line: int, s: str) -> None:
        first_line, first = self.first
        was = "numbers" if self.kind == "number" else "text"
        now = "a number" if self.kind == "text" else "text"
        raise DataError(f"{self.shown}, row {line}, column {quote_cell(self.target)}: the target "
                        f"{quote_cell(s)} is {now}, but the targets before it are {was} (row "
                        f"{first_line}: {quote_cell(first)}); a target holds numbers or text "
                        "labels, not a mix of numbers and text",
                        hint="fix the odd value; text labels sort as text, so a mix would "
                             "number the classes in an unexpected order")

    def _out_of_range(self, x: np.ndarray, y: np.ndarray, lines: np.ndarray,
                      bad_x: np.ndarray, bad_y: np.ndarray) -> None:
        """Raise for the first row (then column) holding a value beyond float32, or nan/inf."""
        rows = bad_x.any(axis=1) | bad_y
        i = int(np.argmax(rows))
        row = f"{self.shown}, row {int(lines[i])}"
        # the columns in file order: the target sits at its own index
        t = self.t
        cols = [(j if j < t else j + 1, "x", j) for j in range(x.shape[1])] + [(t, "y", 0)]
        for _, which, j in sorted(cols):
            v = float(x[i, j]) if which == "x" else float(y[i])
            bad = bool(bad_x[i, j]) if which == "x" else bool(bad_y[i])
            if not bad:
                continue
            name = self._column(j) if which == "x" else quote_cell(self.target)
            if not math.isfinite(v):
                what = "feature columns" if which == "x" else "the target"
                raise DataError(f"{row}, column {name} is {v}: {what} must hold finite numbers",
                                hint="fill in missing values, or drop the row or column")
            raise DataError(f"{row}, column {name} is {v:g}, beyond float32 (at most "
                            f"{FLOAT32_MAX:.7g} in size): it would become infinite",
                            hint="rescale the column (divide it by a power of ten), or fix "
                                 "the value")
        raise AssertionError("no bad value found")  # pragma: no cover

    # -- the target and the features, once read

    def resolve_target(self) -> tuple[np.ndarray, int | None, str]:
        """Class indices (labels sorted: numbers by value, text alphabetically) or float
        targets, the class count (None: regression), and why the task is what it is."""
        n, shown, tq = self.n, self.shown, quote_cell(self.target)
        if n < MIN_ROWS:
            raise DataError(f"{shown} has {n} data rows; at least {MIN_ROWS} are needed to "
                            "split train, validation and test")
        values = self.y[:n]
        if self.kind == "text":
            order = sorted(self.labels)
            if len(order) < 2:
                raise DataError(f"{shown}: the target {tq} has a single value; "
                                "classification needs at least 2 classes")
            rank = np.empty(len(order), dtype=np.int64)
            rank[[self.labels[s] for s in order]] = np.arange(len(order))
            reason = (f"target {tq} holds text labels, so its {len(order)} distinct values are "
                      "read as classes")
            return rank[values.astype(np.int64)], len(order), reason
        fraction = np.flatnonzero(values != np.round(values))
        if len(fraction):
            i = int(fraction[0])
            return values.reshape(-1, 1), None, (
                f"target {tq} holds numbers that are not integers (like {values[i]:g} in row "
                f"{int(self.lines[i])}), so it is read as a regression target")
        distinct = np.unique(values)
        if len(distinct) > MAX_CSV_CLASSES:
            return values.reshape(-1, 1), None, (
                f"target {tq} has {len(distinct)} distinct integer values, more than "
                f"{MAX_CSV_CLASSES}, so it is read as a regression target")
        if len(distinct) < 2:
            raise DataError(f"{shown}: the target {tq} has a single value; classification "
                            "needs at least 2 classes")
        reason = (f"target {tq} has {len(distinct)} distinct integer values, at most "
                  f"{MAX_CSV_CLASSES}, so they are read as classes")
        return np.searchsorted(distinct, values), len(distinct), reason

    def standardized(self, idx: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        """Each split's features as float32, standardized with the train split's mean and
        population std (a constant feature: std 1), a block of rows at a time."""
        x = self.x[:self.n]
        train = idx[0]
        block = max(1, (1 << 18) // x.shape[1])  # rows of about 2 MB: small temporaries
        total = np.zeros(x.shape[1])
        for a in range(0, len(train), block):
            total += x[train[a:a + block]].sum(axis=0)
        mean = total / len(train)
        square = np.zeros(x.shape[1])
        for a in range(0, len(train), block):
            square += ((x[train[a:a + block]] - mean) ** 2).sum(axis=0)
        std = np.sqrt(square / len(train))
        std = np.where(std > 0, std, 1.0)
        out = []
        first_bad: tuple[int, int, float, float] | None = None
        for rows in idx:
            z = np.empty((len(rows), x.shape[1]), dtype=np.float32)
            for a in range(0, len(rows), block):
                part = x[rows[a:a + block]]
                part -= mean
                part /= std
                bad = ~(np.abs(part) <= FLOAT32_MAX)
                if bad.any():
                    i, j = np.argwhere(bad)[0]
                    line = int(self.lines[rows[a + i]])
                    if first_bad is None or line < first_bad[0]:
                        first_bad = (line, int(j), float(x[rows[a + i], j]), float(part[i, j]))
                    continue
                z[a:a + block] = part
            out.append(z)
        if first_bad is not None:
            line, j, v, zv = first_bad
            raise DataError(f"{self.shown}, row {line}, column {self._column(j)}: {v:g} "
                            f"standardizes to {zv:g} (train mean {mean[j]:.3g}, std "
                            f"{std[j]:.3g}), beyond float32: the column barely varies on the "
                            "train split", hint="drop or rescale the column")
        return out


def _number(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


# ---- npz ---------------------------------------------------------------------------

_SAVEZ = "write it with numpy.savez(path, x=inputs, y=targets)"
#: the arrays an npz file may hold that are read (any others are left unread)
NPZ_ARRAYS = ("x", "X", "y", "Y", "x_val", "X_val", "y_val", "Y_val", "x_test", "X_test",
              "y_test", "Y_test")


def _read_npz(full: str, shown: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of :data:`NPZ_ARRAYS` an npz file holds, and the names of all it holds.

    Reads the zip file itself rather than through ``np.load``: a renamed ``.npy``,
    a damaged zip or a zip of other files each get their own message, object
    arrays are refused from their header (nothing is unpickled), and arrays that
    are not used are never read.
    """
    try:
        with open(full, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"cannot read {shown}: {e.strerror or e}") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{shown} is a single .npy array, not an .npz archive",
                        hint=f"{_SAVEZ} (numpy.save writes one array)")
    if not magic.startswith(b"PK"):
        raise DataError(f"{shown} is not an .npz archive (not a zip file)", hint=_SAVEZ)
    damaged = f"{shown} is a damaged or truncated zip file, not a readable .npz archive"
    try:
        archive = zipfile.ZipFile(full)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise DataError(damaged, hint=_SAVEZ) from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
        if not members:
            raise DataError(f"{shown} is a zip file with no .npy arrays, not an .npz archive",
                            hint=_SAVEZ)
        for name in NPZ_ARRAYS:
            if name not in members:
                continue
            try:
                with archive.open(members[name]) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                              np.lib.format.read_array_header_2_0)
                    _, _, dtype = header(member)
                if dtype.hasobject:
                    raise DataError(f"{shown}: array '{name}' holds Python objects ({dtype}); "
                                    "only numeric arrays are read (objects would need "
                                    "unpickling, which can run code)",
                                    hint="store numbers, like numpy.savez(path, "
                                         "x=x.astype('float32'), y=y)")
                with archive.open(members[name]) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
            except DataError:
                raise
            except Exception:  # damaged bytes fail in zipfile, zlib or numpy's header
                # parser (BadZipFile, zlib.error, ValueError, SyntaxError, ...): all one to a user
                raise DataError(f"{shown}: array '{name}' cannot be read (damaged or "
                                "truncated data)", hint=_SAVEZ) from None
    return arrays, sorted(members)


@functools.lru_cache(maxsize=8)
def _npz(full: str, mtime: int, size: int, ino: int, ctime: int, val_split: float, seed: int,
         shown: str) -> Dataset:
    arrays, stored = _read_npz(full, shown)

    def pick(*names: str, required: bool = False) -> np.ndarray | None:
        for n in names:
            if n in arrays:
                return arrays[n]
        if required:
            listed = ", ".join(quote_cell(n) for n in stored[:10])
            more = f" and {len(stored) - 10} more" if len(stored) > 10 else ""
            raise DataError(f"{shown} has no array '{names[0]}'",
                            hint=f"it has: {listed}{more}; {_SAVEZ}")
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
            if a.dtype.kind == "f":
                _check_float32(a, name, shown)
        if len(x) != len(y):
            raise DataError(f"{shown}: x{suffix} has {len(x)} rows but y{suffix} has {len(y)}")
    x, y = parts[""]
    assert x is not None and y is not None
    if len(x) == 0:
        raise DataError(f"{shown}: x has no rows",
                        hint=f"x and y need one row per example; {_SAVEZ}")
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
    kind = "booleans" if y.dtype.kind == "b" else "integers" if classify else "floats"
    reason = (f"y holds {kind} ({y.dtype}), so "
              + ("its labels are read as classes" if classify else
                 "it is read as a regression target; store integer labels for classes"))
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
    return _dataset(f"npz:{shown}", xs, yl, n_classes, reason)  # type: ignore[arg-type]


def _check_float32(a: np.ndarray, name: str, shown: str) -> None:
    """A float array must be finite and fit float32: name the index of the first bad value."""
    bad = ~(np.abs(a) <= FLOAT32_MAX)  # also nan
    if not bad.any():
        return
    where = [int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape)]
    v = float(a[tuple(where)])
    what = (f"{v}: values must be finite numbers" if not math.isfinite(v) else
            f"{v:g}, beyond float32 (at most {FLOAT32_MAX:.7g} in size): it would become "
            "infinite")
    raise DataError(f"{shown}: array '{name}' at index {where} is {what}",
                    hint="fix or drop the value, or rescale the array")
