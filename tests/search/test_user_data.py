"""Users bring their own data: Dataset.from_tensors, Dataset.from_datasets, fingerprints.

References are independent of the code under test: numpy conversions, the npz
reader of the same arrays, the documented fingerprint formula, hand-written checks.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import autoarch
from autoarch.compiler.values import SymbolCall
from autoarch.search.data import DataError, Dataset, fingerprint, load_data
from autoarch.search.trainer import EVAL_BATCH, train

#: train rows: 23 batches of 16 and a last batch of one row, which the trainer drops
N_TRAIN, N_VAL, N_TEST, BATCH = 16 * 23 + 1, 40, 30, 16
CONFIG = {"epochs": 2, "batch": BATCH, "seed": 3}


def arrays(task: str = "classification", seed: int = 0, n_val: int = N_VAL
           ) -> dict[str, np.ndarray]:
    """Three splits of float64 inputs [N, 6]; labels 0..3 (all present) or targets [N, 2]."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("", N_TRAIN), ("_val", n_val), ("_test", N_TEST)):
        out[f"x{split}"] = rng.normal(size=(n, 6))
        if task == "classification":
            y = rng.integers(0, 4, size=n)
            y[:4] = np.arange(4)
            out[f"y{split}"] = y
        else:
            out[f"y{split}"] = rng.normal(size=(n, 2))
    return out


def tensors_of(a: dict[str, np.ndarray], **kw: Any) -> Dataset:
    return Dataset.from_tensors(a["x"], a["y"], a["x_val"], a["y_val"], a["x_test"],
                                a["y_test"], **kw)


def model(d_out: int, seed: int = 0) -> nn.Module:
    """Dropout in the middle: a DataLoader that drew from torch's global generator would
    change its masks, and the metrics with them."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, d_out))


def run(data: Dataset, d_out: int, **config: Any) -> tuple[dict[str, float], list[tuple]]:
    """The metrics (timings left out) and every epoch's losses and accuracies."""
    result = train(model(d_out), data, {**CONFIG, **config})
    metrics = {k: v for k, v in result.metrics.items() if k not in ("train_time", "latency")}
    epochs = [(e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.lr)
              for e in result.epochs]
    return metrics, epochs


class Pairs(torch.utils.data.Dataset):
    """A map-style dataset that is not a TensorDataset: numpy float64 inputs, Python
    labels (int, or a list of floats), as a dataset reading files might give."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:
        y = self.y[i]
        return self.x[i].copy(), int(y) if np.ndim(y) == 0 else [float(v) for v in y]


class Broken(Pairs):
    """Item ``bad`` is replaced by ``value`` (an (x, y) pair or anything else)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, bad: int, value: Any) -> None:
        super().__init__(x, y)
        self.bad, self.value = bad, value

    def __getitem__(self, i: int) -> Any:
        return self.value if i == self.bad else super().__getitem__(i)


def one_line(e: pytest.ExceptionInfo) -> str:
    text = e.value.format()
    assert "\n" not in text and text.startswith("error: "), text
    return text


# ---- from_tensors ------------------------------------------------------------------


def test_from_tensors_classification_converts_as_numpy_does() -> None:
    a = arrays()
    data = tensors_of(a, name="mine")
    assert data.task == "classification" and data.n_classes == 4 and data.in_memory
    assert data.input_shape == (6,) and data.output_shape == (4,)
    for split in ("", "_val", "_test"):
        x, y = getattr(data, f"x{split or '_train'}"), getattr(data, f"y{split or '_train'}")
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert np.array_equal(x.numpy(), a[f"x{split}"].astype(np.float32))
        assert np.array_equal(y.numpy(), a[f"y{split}"])
    assert "integers" in data.task_reason
    assert str(data) == "dataset(mine)"
    assert repr(data) == ("Dataset('mine', classification, inputs [6], outputs [4], "
                          f"train/val/test {N_TRAIN}/{N_VAL}/{N_TEST})")


def test_from_tensors_labels_columns_bools_and_given_classes() -> None:
    x = torch.randn(10, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    column = Dataset.from_tensors(x, y[:, None], x, y[:, None].numpy())
    assert column.y_train.shape == (10,) and torch.equal(column.y_val, y)
    assert column.n_classes == 3
    wide = Dataset.from_tensors(x, y, x, y, classes=7)
    assert wide.n_classes == 7 and wide.output_shape == (7,)
    flags = Dataset.from_tensors(x.numpy(), y.numpy() > 0, x, y > 0)
    assert flags.task == "classification" and flags.n_classes == 2
    assert flags.y_train.tolist() == [int(v > 0) for v in y.tolist()]
    whole = Dataset.from_tensors(x, y.double(), x, y.float(), task="classification")
    assert whole.task == "classification" and torch.equal(whole.y_train, y)


def test_from_tensors_regression() -> None:
    a = arrays("regression")
    data = tensors_of(a)
    assert data.task == "regression" and data.n_classes is None and data.output_shape == (2,)
    assert np.array_equal(data.y_val.numpy(), a["y_val"].astype(np.float32))
    one = Dataset.from_tensors(a["x"], a["y"][:, 0], a["x_val"], a["y_val"][:, 0])
    assert one.y_train.shape == (N_TRAIN, 1) and one.output_shape == (1,)
    assert not one.has_test and one.x_test is None and one.size("test") == 0
    labels = np.arange(N_TRAIN) % 5
    forced = Dataset.from_tensors(a["x"], labels, a["x_val"], labels[:N_VAL], task="regression")
    assert forced.task == "regression" and forced.y_train.dtype == torch.float32
    assert forced.y_train[:, 0].tolist() == labels.astype(float).tolist()
    assert "task='regression' was given" in forced.task_reason


# ---- the trainer on your own data ------------------------------------------------------


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_training_from_tensors_equals_the_same_arrays_read_from_npz(tmp_path: Path,
                                                                    task: str) -> None:
    a = arrays(task)
    path = tmp_path / "mine.npz"
    np.savez(path, **a)
    from_file = load_data(SymbolCall("npz", (str(path),), ()))
    d_out = 4 if task == "classification" else 2
    assert run(tensors_of(a), d_out) == run(from_file, d_out)


def test_from_datasets_trains_exactly_as_from_tensors() -> None:
    # val holds more than one evaluation chunk, so its chunks must match too
    a = arrays(n_val=EVAL_BATCH + 37)
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    loaded = Dataset.from_datasets(TensorDataset(t["x"], t["y"]),
                                   TensorDataset(t["x_val"], t["y_val"]),
                                   TensorDataset(t["x_test"], t["y_test"]), classes=4)
    assert not loaded.in_memory and loaded.n_classes == 4 and loaded.input_shape == (6,)
    want = run(tensors_of(a), 4)
    assert run(loaded, 4) == want
    custom = Dataset.from_datasets(Pairs(a["x"], a["y"]), Pairs(a["x_val"], a["y_val"]),
                                   Pairs(a["x_test"], a["y_test"]), classes=4)
    assert run(custom, 4) == want
    assert set(want[0]) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                            "test_loss", "test_accuracy"}


def test_from_datasets_regression_and_workers_train_as_from_tensors() -> None:
    a = arrays("regression")
    want = run(tensors_of(a), 2)
    sets = [Pairs(a[f"x{s}"], a[f"y{s}"]) for s in ("", "_val", "_test")]
    data = Dataset.from_datasets(*sets, num_workers=1)
    assert data.task == "regression" and data.output_shape == (2,)
    assert run(data, 2) == want


def test_no_test_split_means_no_test_metrics() -> None:
    a = arrays()
    mem = Dataset.from_tensors(a["x"], a["y"], a["x_val"], a["y_val"])
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    sets = Dataset.from_datasets(TensorDataset(t["x"], t["y"]),
                                 TensorDataset(t["x_val"], t["y_val"]), classes=4)
    for data in (mem, sets):
        assert not data.has_test
        metrics, _ = run(data, 4)
        assert set(metrics) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert run(mem, 4) == run(sets, 4)
    assert repr(sets) == ("Dataset('datasets', classification, inputs [6], outputs [4], "
                          f"train/val {N_TRAIN}/{N_VAL}, no test split, torch datasets)")


def test_a_bad_item_met_in_training_is_one_line_naming_it() -> None:
    a = arrays()
    val = Pairs(a["x_val"], a["y_val"])
    nan_x = a["x"][7].copy()
    nan_x[2] = np.nan
    cases = [
        (Broken(a["x"], a["y"], 7, (nan_x, 1)), "train item 7 has x nan at index [2]"),
        (Broken(a["x"], a["y"], 9, (a["x"][9], 4)), "train item 9 has label 4, not a class 0 "
                                                    "to 3"),
        (Broken(a["x"], a["y"], 5, (a["x"][5, :4], 0)), "train item 5 has x of shape [4]"),
        (Broken(a["x"], a["y"], 3, "text"), "train item 3 is a str, not an (x, y) pair"),
    ]
    for train_set, message in cases:
        data = Dataset.from_datasets(train_set, val, classes=4, name="broken")
        with pytest.raises(DataError) as e:
            train(model(4), data, CONFIG)
        assert f"data set 'broken': {message}" in one_line(e)


def test_data_read_from_torch_datasets_has_no_tensors_and_no_one_shot() -> None:
    a = arrays()
    data = Dataset.from_datasets(Pairs(a["x"], a["y"]), Pairs(a["x_val"], a["y_val"]),
                                 classes=4, name="disk")
    with pytest.raises(DataError) as e:
        data.x_train  # noqa: B018
    assert "reading x_train needs in-memory data (Dataset.from_tensors)" in one_line(e)
    x, y = data.take("val", [3, 0])
    assert np.array_equal(x.numpy(), a["x_val"][[3, 0]].astype(np.float32))
    assert y.tolist() == a["y_val"][[3, 0]].tolist()
    spec = autoarch.loads("model m(x: [6]) -> [4] { return linear(relu(linear(x, "
                          "choice(8, 16))), 4) }\ntrain { data = digits }\n")
    from autoarch.search.supernet import score_candidate, train_supernet

    net = autoarch.supernet(spec)
    with pytest.raises(DataError) as e:
        train_supernet(net, data)
    assert "one-shot search needs in-memory data (Dataset.from_tensors)" in one_line(e)
    with pytest.raises(DataError):
        score_candidate(net, spec.space().sample(seed=0), data)


# ---- mistakes ----------------------------------------------------------------------

X, Y = np.zeros((10, 3)), np.arange(10) % 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(y_train=Y[:9]), "x_train has 10 rows but y_train has 9"),
    (dict(x_val=np.zeros((10, 4))), "x_val has examples of shape [4] but x_train has [3]"),
    (dict(x_train=X[:0], y_train=Y[:0]), "x_train has no rows"),
    (dict(x_val=X[:0], y_val=Y[:0]), "x_val has no rows"),
    (dict(x_test=X), "x_test is given without y_test"),
    (dict(y_test=Y), "y_test is given without x_test"),
    (dict(x_train=np.float64(1.0)), "x_train is a 0-d array"),
    (dict(x_val=np.array([["a"] * 3] * 10)), "x_val holds <U1, not numbers"),
    (dict(y_train=np.array([object()] * 10)), "y_train holds object, not numbers"),
    (dict(x_train=torch.zeros(10, 3, dtype=torch.complex64)), "x_train holds torch.complex64"),
    (dict(y_train=np.zeros(10, dtype=int), y_val=np.zeros(10, dtype=int)),
     "y holds a single class (0)"),
    (dict(classes=1), "classes=1; classification needs at least 2 classes"),
    (dict(y_val=np.arange(10) % 3, classes=2),
     "array 'y_val' at index [2] is 2, not a class label 0 to 1 (classes=2)"),
    (dict(y_train=Y - 1), "array 'y_train' at index [0] is -1, not a class label"),
    (dict(y_train=np.zeros((10, 2), dtype=int)), "y_train holds class labels, one per row, "
                                                 "but has shape [10, 2]"),
    (dict(y_val=Y + 0.5, task="classification"),
     "array 'y_val' at index [0] is 0.5: class labels must be whole numbers"),
    (dict(y_val=Y * 1.0), "y_train holds integers (int64) but y_val holds floats (float64)"),
    (dict(x_val=np.where(np.arange(30).reshape(10, 3) == 7, np.inf, 0.0)),
     "array 'x_val' at index [2, 1] is inf: values must be finite numbers"),
    (dict(x_train=np.full((10, 3), 1e300)), "array 'x_train' at index [0, 0] is 1e+300, "
                                            "beyond float32"),
    (dict(y_train=np.zeros((10, 1)), y_val=np.zeros((10, 2))),
     "y_val has targets of shape [2] but y_train has [1]"),
    (dict(task="ranking"), "task must be 'classification', 'regression' or None"),
    (dict(task="regression", classes=3), "classes=3 is for classification"),
    (dict(classes=2.0), "classes must be an integer, got 2.0"),
    (dict(name=""), "name must be a string of 1 to 100 printable characters"),
])
def test_from_tensors_mistakes_are_one_line_naming_the_argument(kwargs: dict[str, Any],
                                                                  message: str) -> None:
    args = {"x_train": X, "y_train": Y, "x_val": X, "y_val": Y, **kwargs}
    with pytest.raises(DataError) as e:
        Dataset.from_tensors(**args)
    assert f"error: Dataset.from_tensors: {message}" in one_line(e)


def test_from_datasets_mistakes_are_one_line() -> None:
    x, y = torch.zeros(10, 3), torch.arange(10) % 2
    good = TensorDataset(x, y)
    cases = [
        ((good, good), {}, "the first training item's label is an integer, so the task "
                           "is classification, and classes= must be given: counting "
                           "the classes would read every item of the data set (a full pass)"),
        ((TensorDataset(x[:0], y[:0]), good), {"classes": 2}, "train is empty"),
        ((good, TensorDataset(x[:0], y[:0])), {"classes": 2}, "val is empty"),
        ((good, None), {"classes": 2}, "val must be a torch.utils.data.Dataset, got None"),
        ((good, 5), {"classes": 2}, "val is a int, not a map-style dataset"),
        ((TensorDataset(x), good), {"classes": 2}, "the first item of train is a tuple, not an "
                                                   "(x, y) pair"),
        ((good, TensorDataset(torch.zeros(10, 4), y)), {"classes": 2},
         "val item 0 has x of shape [4], but the first training item's is [3]"),
        ((good, good, TensorDataset(x, y + 5)), {"classes": 2},
         "test item 0 has label 5, not a class 0 to 1 (classes=2)"),
        ((good, good), {"classes": 2, "num_workers": -1}, "num_workers must be an integer >= 0"),
        ((TensorDataset(x, torch.zeros(10, 0)), good), {},
         "the first training item's target is empty"),
    ]
    for sets, kw, message in cases:
        with pytest.raises(DataError) as e:
            Dataset.from_datasets(*sets, **kw)
        assert f"error: Dataset.from_datasets: {message}" in one_line(e), message


# ---- fingerprints, labels, pickling --------------------------------------------------


def test_tensor_fingerprint_follows_its_formula() -> None:
    a = arrays()
    data = tensors_of(a)
    obj: dict[str, Any] = {"data": "tensors", "task": "classification", "n_classes": 4}
    for split in ("train", "val", "test"):
        suffix = "" if split == "train" else f"_{split}"
        for v, dtype in (("x", np.float32), ("y", np.int64)):
            arr = np.ascontiguousarray(a[f"{v}{suffix}"], dtype=dtype)
            obj[f"{v}_{split}"] = {"dtype": f"torch.{arr.dtype}", "shape": list(arr.shape),
                                   "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    want = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert data.fingerprint() == want == fingerprint(data, base_dir="/nowhere")
    assert load_data(data, val_split=0.9) is data


def test_fingerprints_change_with_one_value_and_match_for_copies() -> None:
    a = arrays()
    fp = tensors_of(a).fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    copy = {k: v.copy() for k, v in a.items()}
    assert tensors_of(copy, name="other").fingerprint() == fp  # the name is not data
    as_torch = {k: torch.from_numpy(v) for k, v in a.items()}
    assert tensors_of(as_torch).fingerprint() == fp
    for key, where in (("x_val", (3, 2)), ("y_test", (5,)), ("x", (0, 0))):
        changed = {k: v.copy() for k, v in a.items()}
        changed[key][where] = changed[key][where] + 1
        assert tensors_of(changed).fingerprint() != fp, key
    assert tensors_of(a, classes=5).fingerprint() != fp
    assert Dataset.from_tensors(a["x"], a["y"], a["x_val"], a["y_val"]).fingerprint() != fp

    small = {k: v[:50] for k, v in a.items()}  # 50 rows: every item is sampled
    sets = Dataset.from_datasets(Pairs(small["x"], small["y"]),
                                 Pairs(small["x_val"], small["y_val"]), classes=4)
    again = Dataset.from_datasets(Pairs(small["x"].copy(), small["y"].copy()),
                                  Pairs(small["x_val"], small["y_val"]), classes=4)
    assert sets.fingerprint() == again.fingerprint() == fingerprint(sets)
    assert len(sets.fingerprint()) == 16 and sets.fingerprint() != fp
    changed_x = small["x_val"].copy()
    changed_x[17, 1] += 1e-3
    other = Dataset.from_datasets(Pairs(small["x"], small["y"]), Pairs(changed_x, small["y_val"]),
                                  classes=4)
    assert other.fingerprint() != sets.fingerprint()
    t = {k: torch.from_numpy(v) for k, v in small.items()}
    tds = Dataset.from_datasets(TensorDataset(t["x"], t["y"]),
                                TensorDataset(t["x_val"], t["y_val"]), classes=4)
    assert tds.fingerprint() != sets.fingerprint()  # the class name counts


def test_fingerprint_and_label_are_the_same_in_another_process() -> None:
    code = ("import numpy as np, torch\n"
            "from torch.utils.data import TensorDataset\n"
            "from autoarch.search.data import Dataset\n"
            "rng = np.random.default_rng(5)\n"
            "x, y = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)\n"
            "a = Dataset.from_tensors(x[:150], y[:150], x[150:], y[150:], name='mine')\n"
            "t = torch.from_numpy(x), torch.from_numpy(y)\n"
            "b = Dataset.from_datasets(TensorDataset(t[0][:150], t[1][:150]),\n"
            "                          TensorDataset(t[0][150:], t[1][150:]), classes=3)\n"
            "print(a.fingerprint(), b.fingerprint(), a, b)\n")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1] and outs[0].split()[2:] == ["dataset(mine)", "dataset(datasets)"]


def test_datasets_pickle_and_unpickle() -> None:
    a = arrays()
    mem = tensors_of(a, name="mine")
    back = pickle.loads(pickle.dumps(mem))
    assert back.fingerprint() == mem.fingerprint() and str(back) == str(mem)
    assert torch.equal(back.x_test, mem.x_test) and back.n_classes == 4
    sets = Dataset.from_datasets(Pairs(a["x"], a["y"]), Pairs(a["x_val"], a["y_val"]),
                                 classes=4, num_workers=1)
    back = pickle.loads(pickle.dumps(sets))
    assert back.fingerprint() == sets.fingerprint() and back.num_workers == 1
    assert repr(back) == repr(sets) and not back.in_memory
    assert torch.equal(back.take("train", [5, 9])[0], sets.take("train", [5, 9])[0])
