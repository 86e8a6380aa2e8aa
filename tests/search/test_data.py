"""Data sets of the search: bundled tasks checked against their formulas, csv and npz files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import autoarch
from autoarch.compiler.values import Symbol, SymbolCall
from autoarch.search.data import DataError, Dataset, fingerprint, load_data

BUNDLED = ("digits", "kan_fit", "recall", "spirals", "moons", "blobs", "xor", "parity")


def held(n: int, frac: float) -> int:
    """Rows a split of n rows holds out: n * frac rounded half up (documented in docs/data.md)."""
    return math.floor(n * frac + 0.5)


def all_rows(d: Dataset) -> tuple[np.ndarray, np.ndarray]:
    x = torch.cat([d.x_train, d.x_val, d.x_test]).double().numpy()
    y = torch.cat([d.y_train, d.y_val, d.y_test]).numpy()
    return x, y


# ---- split and digits ------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_shapes_dtypes_and_split_sizes(name):
    d = load_data(Symbol(name))
    n = len(d.x_train) + len(d.x_val) + len(d.x_test)
    assert len(d.x_test) == held(n, 0.2)
    assert len(d.x_val) == held(n - len(d.x_test), 0.2)
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == torch.float32 and len(x) == len(y)
        assert tuple(x.shape[1:]) == d.input_shape
        assert torch.isfinite(x).all()
    if d.task == "classification":
        assert d.y_train.dtype == torch.int64 and d.y_train.dim() == 1
        assert d.output_shape == (d.n_classes,)
        for y in (d.y_train, d.y_val, d.y_test):  # stratified: every class in every split
            assert set(y.tolist()) == set(range(d.n_classes))
    else:
        assert d.y_train.dtype == torch.float32 and d.output_shape == tuple(d.y_train.shape[1:])


def test_digits_sizes_and_classes():
    d = load_data(Symbol("digits"))
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (1150, 288, 359)
    assert d.input_shape == (64,) and d.output_shape == (10,) and d.task == "classification"


def test_digits_split_is_stratified():
    for val_split in (0.2, 0.1, 0.35):
        d = load_data(Symbol("digits"), val_split=val_split)
        counts = [np.bincount(y.numpy(), minlength=10) for y in (d.y_train, d.y_val, d.y_test)]
        total = sum(counts)
        # each class gives its share of rows to the test split and then to val, to within a row
        assert np.all(np.abs(counts[2] - 0.2 * total) <= 1.0)
        assert np.all(np.abs(counts[1] - val_split * (counts[0] + counts[1])) <= 1.0)


def test_digits_rows_are_sklearns_standardized_with_train_statistics_and_disjoint():
    from sklearn.datasets import load_digits

    raw_x, raw_y = load_digits(return_X_y=True)
    d = load_data(Symbol("digits"))
    z, y = all_rows(d)
    assert len(z) == len(raw_x) == 1797
    # each column is an affine map of sklearn's pixel column: recover it from the sorted values
    recovered = np.zeros_like(z)
    for j in range(64):
        xs, zs = np.sort(raw_x[:, j]), np.sort(z[:, j])
        if xs[0] == xs[-1]:
            assert np.all(zs == zs[0])
            recovered[:, j] = xs[0]
            continue
        a, b = np.polyfit(xs, zs, 1)
        recovered[:, j] = (z[:, j] - b) / a
    assert np.abs(recovered - np.round(recovered)).max() < 1e-3
    recovered = np.round(recovered)
    # the three splits together are exactly sklearn's rows with their labels, each once
    mine = np.column_stack([recovered, y])
    ref = np.column_stack([raw_x, raw_y])
    assert np.array_equal(mine[np.lexsort(mine.T[::-1])], ref[np.lexsort(ref.T[::-1])])
    # the standardization uses the train split's mean and (population) std
    n_tr = len(d.x_train)
    raw_train = recovered[:n_tr]
    mean, std = raw_train.mean(0), raw_train.std(0)
    std = np.where(std > 0, std, 1.0)
    np.testing.assert_allclose(z, (recovered - mean) / std, atol=1e-5)
    tr = d.x_train.double()
    varying = raw_train.std(0) > 0
    np.testing.assert_allclose(tr.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(tr.std(0, correction=0).numpy()[varying], 1.0, atol=1e-5)
    assert np.all(tr.numpy()[:, ~varying] == 0.0)


def test_digits_split_is_fixed_across_calls_and_val_split_keeps_the_test_split():
    a = load_data(Symbol("digits"))
    b = load_data("digits", val_split=0.2, seed=0)
    for t in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, t), getattr(b, t))
    c = load_data(Symbol("digits"), val_split=0.3)
    # standardization changes with the train rows, the test labels' order does not
    assert torch.equal(a.y_test, c.y_test)
    assert len(c.x_val) == held(len(c.x_train) + len(c.x_val), 0.3)


# ---- synthetic tasks against their formulas ----------------------------------------


def test_kan_fit_targets_are_the_formula():
    d = load_data(Symbol("kan_fit"))
    x, _ = all_rows(d)
    y = torch.cat([d.y_train, d.y_val, d.y_test]).double().numpy()
    assert d.task == "regression" and d.input_shape == (2,) and d.output_shape == (1,)
    assert len(x) == 3000 and x.min() >= -1 and x.max() <= 1
    np.testing.assert_allclose(y[:, 0], np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2),
                               rtol=1e-5)
    assert abs(x.mean()) < 0.05 and x.std() > 0.5  # uniform on [-1, 1]: std 0.577


def test_recall_target_is_the_value_paired_with_the_query_key():
    d = load_data(Symbol("recall"))
    x, y = all_rows(d)
    assert d.input_shape == (9, 24) and d.output_shape == (8,)
    assert set(np.unique(x)) <= {0.0, 1.0}
    key_part, value_part = x[:, :, :16], x[:, :, 16:]
    # 8 pair tokens, each with exactly one key and one value; the query has one key, no value
    assert np.all(key_part.sum(-1) == 1)
    assert np.all(value_part[:, :8].sum(-1) == 1) and np.all(value_part[:, 8] == 0)
    for seq, label in zip(x, y, strict=True):
        keys = [int(np.flatnonzero(tok[:16])[0]) for tok in seq[:8]]
        values = [int(np.flatnonzero(tok[16:])[0]) for tok in seq[:8]]
        query = int(np.flatnonzero(seq[8, :16])[0])
        assert len(set(keys)) == 8 and query in keys
        assert label == values[keys.index(query)]
    assert len(np.unique(y)) == 8


def test_parity_labels_are_the_xor_of_the_bits():
    d = load_data(Symbol("parity"))
    x, y = all_rows(d)
    bits = (x > 0).astype(int)
    assert set(np.unique(x)) == {-1.0, 1.0}
    expected = np.bitwise_xor.reduce(bits, axis=1)
    assert np.array_equal(y, expected)
    # every pattern of the bits exactly once: no input is in two splits
    assert len({tuple(r) for r in bits}) == len(bits) == 2 ** x.shape[1]


def test_xor_labels_follow_the_quadrants():
    d = load_data(Symbol("xor"))
    x, y = all_rows(d)
    label = (x[:, 0] > 0) != (x[:, 1] > 0)
    far = (np.abs(x[:, 0]) > 0.5) & (np.abs(x[:, 1]) > 0.5)  # 5 noise std from an axis
    assert far.sum() > 100 and np.array_equal(y[far], label[far])
    assert (y == label).mean() > 0.9


def test_spirals_points_lie_on_their_own_arm():
    d = load_data(Symbol("spirals"))
    x, y = all_rows(d)
    t = np.linspace(0, 1, 4001)
    arms = [np.stack([t * np.cos(3.5 * np.pi * t + np.pi * c),
                      t * np.sin(3.5 * np.pi * t + np.pi * c)], 1) for c in (0, 1)]
    dist = np.stack([np.min(np.linalg.norm(x[:, None] - a[None], axis=-1), axis=1)
                     for a in arms], 1)
    assert (dist.argmin(1) == y).mean() > 0.97
    assert np.median(dist[np.arange(len(y)), y]) < 0.05
    assert np.bincount(y).tolist() == [500, 500]


def test_moons_and_blobs_geometry():
    x, y = all_rows(load_data(Symbol("moons")))
    r0 = np.linalg.norm(x[y == 0], axis=1)  # upper moon: unit circle around (0, 0)
    r1 = np.linalg.norm(x[y == 1] - [1.0, 0.5], axis=1)  # lower moon: around (1, 0.5)
    assert abs(np.median(r0) - 1) < 0.05 and abs(np.median(r1) - 1) < 0.05
    assert x[y == 0, 1].mean() > 0.4 and x[y == 1, 1].mean() < 0.1
    d = load_data(Symbol("blobs"))
    x, y = all_rows(d)
    centers = np.array([(-3, 0), (3, 0), (0, 3), (0, -3)])
    assert d.n_classes == 4
    for k in range(4):
        assert np.linalg.norm(x[y == k].mean(0) - centers[k]) < 0.2
        assert np.all(np.abs(x[y == k].std(0) - 1.0) < 0.15)


def test_bundled_sets_are_cached():
    assert load_data(Symbol("recall")) is load_data(Symbol("recall"))


# ---- synthetic(shape, classes, rows) -------------------------------------------------


def synthetic(shape, classes, rows=None) -> SymbolCall:
    kw = [("shape", tuple(shape)), ("classes", classes)] + ([("rows", rows)] if rows else [])
    return SymbolCall("synthetic", (), tuple(kw))


def test_synthetic_shapes_and_split_sizes():
    d = load_data(synthetic([3, 8, 8], 4, 400))
    assert d.task == "classification" and d.n_classes == 4
    assert d.input_shape == (3, 8, 8) and d.output_shape == (4,)
    # 400 rows: test round(80) = 80, val round(320 * 0.2) = 64, the rest train
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (256, 64, 80)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    d = load_data(synthetic([16], 10))  # rows default to 1000
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (640, 160, 200)


def test_synthetic_classes_are_balanced_and_stratified():
    d = load_data(synthetic([5], 7, 1000))
    _, y = all_rows(d)
    counts = np.bincount(y, minlength=7)
    assert counts.sum() == 1000 and set(counts.tolist()) <= {142, 143}  # 1000 = 7 * 142 + 6
    test = np.bincount(d.y_test.numpy(), minlength=7)
    assert np.all(np.abs(test - 0.2 * counts) <= 1.0)


def test_synthetic_is_deterministic_and_independent_of_the_split_seed():
    from autoarch.search import data as data_module

    a = load_data(synthetic([2, 12, 12], 3, 300))
    data_module._synthetic.cache_clear()
    b = load_data(synthetic([2, 12, 12], 3, 300))
    assert a is not b
    for t in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, t), getattr(b, t))
    # another split seed moves rows between splits; the rows themselves stay the same
    c = load_data(synthetic([2, 12, 12], 3, 300), seed=5)
    xa, ya = all_rows(a)
    xc, yc = all_rows(c)
    assert not np.array_equal(ya, yc)

    def rows(x, y):
        return sorted(zip(map(bytes, x.astype(np.float32)), y.tolist(), strict=True))

    assert rows(xa, ya) == rows(xc, yc)
    assert load_data(synthetic([2, 12, 12], 3, 300), seed=5) is c  # cached


def test_synthetic_examples_are_smooth_class_templates_plus_white_noise():
    shape, classes, rows = (1, 32, 32), 4, 4000
    x, y = all_rows(load_data(synthetic(shape, classes, rows)))
    x = x.reshape(rows, 32, 32)
    means = np.stack([x[y == k].mean(0) for k in range(classes)])
    resid = x - means[y]
    # the documented noise: n = 0.64 rows / classes, s^2 = n/2 (sqrt(1 + 8 D / (16 n)) - 1)
    n, size = 0.64 * rows / classes, 32 * 32
    s2 = n / 2 * (math.sqrt(1 + 8 * size / (16 * n)) - 1)
    assert resid.std() == pytest.approx(math.sqrt(s2 / (1 + s2)), rel=0.02)
    assert x.std() == pytest.approx(1.0, rel=0.02)  # templates of unit RMS: x has variance 1
    # templates are smooth (neighbouring pixels alike), the noise is white

    def neighbour_corr(a):
        return np.corrcoef(a[..., :-1].ravel(), a[..., 1:].ravel())[0, 1]

    assert neighbour_corr(means) > 0.8 and abs(neighbour_corr(resid)) < 0.02


def test_synthetic_is_learnable_but_not_trivial():
    from autoarch.search.trainer import train

    d = load_data(synthetic([3, 8, 8], 10))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    result = train(model, d, {"epochs": 5, "optimizer": SymbolCall("adamw", (), (("lr", 3e-3),))})
    assert result.metrics["val_accuracy"] > 0.4  # chance is 0.1
    # a simple rule, nearest class mean fit on the train split, is far from chance on the
    # test split and still not perfect
    x = d.x_train.reshape(len(d.x_train), -1).double().numpy()
    means = np.stack([x[d.y_train.numpy() == k].mean(0) for k in range(10)])
    x, y = d.x_test.reshape(len(d.x_test), -1).double().numpy(), d.y_test.numpy()
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert 0.6 < (nearest == y).mean() < 0.95


def spec_with_data(data: str) -> str:
    return ("model m(x: [3, 4, 4]) -> [10] {\n  return linear(flatten(x), 10)\n}\n"
            f"train {{ data = {data} }}\n")


def test_synthetic_in_a_spec():
    spec = autoarch.loads(spec_with_data("synthetic(shape = [3, 4, 4], classes = 10, "
                                         "rows = 2e3)"), "x.spec")
    data = spec.train_config()["data"]
    assert data == SymbolCall("synthetic", (), (("shape", (3, 4, 4)), ("classes", 10),
                                                ("rows", 2000)))
    assert load_data(data).input_shape == (3, 4, 4)


@pytest.mark.parametrize("args, error, message", [
    ("shape = [3, 4, 4], classes = 1", "SpecValueError", "classes must be an integer from 2"),
    ("shape = [3, 4, 4], classes = 1001, rows = 100000", "SpecValueError",
     "classes must be an integer from 2 to 1,000"),
    ("shape = [3, 4, 4], classes = 2.5", "SpecValueError", "got 2.5"),
    ("shape = [3, 4, 4], classes = 2, rows = 9", "SpecValueError",
     "rows must be an integer from 10 to 100,000"),
    ("shape = [3, 4, 4], classes = 2, rows = 100001", "SpecValueError", "got 100001"),
    ("shape = [3, 4, 4], classes = 20, rows = 100", "SpecValueError",
     "100 rows for 20 classes; each class needs at least 10"),
    ("shape = [3, 1024, 1024], classes = 10", "SpecValueError",
     "1,000 rows of 3,145,728 values"),
    ("shape = [3, 0, 4], classes = 2", "SpecValueError", "shape sizes must be an integer from 1"),
    ("shape = [], classes = 2", "SpecTypeError", "shape must be a list of 1 to 8 sizes"),
    ("shape = 3, classes = 2", "SpecTypeError", "shape must be a list"),
    ('shape = "3", classes = 2', "SpecTypeError", "shape must be a list"),
    ("shape = [3, 4, 4]", "SpecTypeError", "needs classes"),
    ("classes = 3", "SpecTypeError", "needs shape"),
    ("shape = [3, 4, 4], klasses = 3", "SpecNameError", "no argument 'klasses'"),
    ("[3, 4, 4], 3", "SpecTypeError", "takes keyword arguments"),
])
def test_synthetic_bad_arguments_are_located_spec_errors(args, error, message):
    text = spec_with_data(f"synthetic({args})")
    with pytest.raises(autoarch.SpecError, match=re.escape(message)) as e:
        autoarch.loads(text, "x.spec").train_config()
    assert type(e.value).__name__ == error
    assert (e.value.filename, e.value.line, e.value.column) == ("x.spec", 4, 16)
    if "klasses" in args:
        assert "did you mean 'classes'" in str(e.value)


def test_synthetic_bad_arguments_through_the_api_are_one_line_data_errors():
    with pytest.raises(DataError, match="classes must be an integer from 2") as e:
        load_data(synthetic([4], 1))
    assert "\n" not in str(e.value) and str(e.value).startswith("error: ")
    with pytest.raises(DataError, match="rows must be an integer from 10 to 100,000"):
        load_data(synthetic([4], 2, 10**6))


def test_synthetic_of_the_largest_allowed_size_stays_small_in_memory():
    import tracemalloc

    from autoarch.search import data as data_module

    data_module._synthetic.cache_clear()
    tracemalloc.start()
    try:
        d = load_data(synthetic([2000], 2, 20_000))  # 40,000,000 values: the limit
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 20_000
    assert peak < 200e6  # 160 MB of float32 and a block of work
    data_module._synthetic.cache_clear()
    with pytest.raises(DataError, match="40,000,000"):
        load_data(synthetic([2000], 2, 20_001))


# ---- fingerprints ------------------------------------------------------------------


def reference_fingerprint(obj: dict) -> str:
    """docs/data.md: sha256 of the sorted, compact JSON of what names the data, 16 digits."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_file_fingerprints_are_the_digest_of_the_bytes_and_follow_rewrites(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "y"], [[i, i % 2] for i in range(20)])
    data = SymbolCall("csv", ("d.csv",), (("target", "y"),))
    first = fingerprint(data, base_dir=tmp_path)
    expected = reference_fingerprint(
        {"data": "csv", "target": "y", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    assert first == expected and fingerprint(data, base_dir=tmp_path) == first
    # the contents count, not the path
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_bytes(path.read_bytes())
    assert fingerprint(SymbolCall("csv", ("sub/d.csv", "y")), base_dir=tmp_path) == first
    assert fingerprint(SymbolCall("csv", ("d.csv", "a")), base_dir=tmp_path) != first
    # rewritten in place: other digits, the same size, the old modification time
    st = path.stat()
    text = path.read_text()
    changed = text.replace("3,1", "5,1")
    assert changed != text and len(changed) == len(text)
    path.write_text(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    second = fingerprint(data, base_dir=tmp_path)
    assert second != first
    assert second == reference_fingerprint(
        {"data": "csv", "target": "y", "sha256": hashlib.sha256(changed.encode()).hexdigest()})
    # and load_data reads the new rows, not its cached old ones
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    old_rows = all_rows(load_data(data, base_dir=tmp_path))[0]
    path.write_text(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    new_rows = all_rows(load_data(data, base_dir=tmp_path))[0]
    assert not np.array_equal(np.sort(old_rows, 0), np.sort(new_rows, 0))


def test_npz_fingerprint_and_missing_files(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((20, 2)), y=np.arange(20) % 2)
    digest = hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()
    got = fingerprint(SymbolCall("npz", ("a.npz",)), base_dir=tmp_path)
    assert got == reference_fingerprint({"data": "npz", "sha256": digest})
    with pytest.raises(DataError, match="data file not found"):
        fingerprint(SymbolCall("npz", ("b.npz",)), base_dir=tmp_path)
    with pytest.raises(DataError, match="unknown data set 'digit'"):
        fingerprint("digit")


def test_bundled_and_synthetic_fingerprints(tmp_path):
    import sklearn

    from autoarch.search.data import DATA_VERSION, GENERATION_SEED

    digits_file = Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"
    common = {"generation_seed": GENERATION_SEED, "version": DATA_VERSION}
    assert fingerprint("digits") == reference_fingerprint(
        {"data": "digits", "sha256": hashlib.sha256(digits_file.read_bytes()).hexdigest(),
         **common})
    assert fingerprint(Symbol("xor")) == reference_fingerprint({"data": "xor", **common})
    syn = synthetic([3, 8, 8], 10)
    assert fingerprint(syn) == reference_fingerprint(
        {"data": "synthetic", "shape": [3, 8, 8], "classes": 10, "rows": 1000, **common})
    assert fingerprint(syn) == fingerprint(synthetic([3, 8, 8], 10, 1000))
    assert len({fingerprint(n) for n in BUNDLED} | {fingerprint(syn)}) == len(BUNDLED) + 1
    assert fingerprint(synthetic([3, 8, 8], 10, 2000)) != fingerprint(syn)
    # stable across processes (no hash randomisation, no object ids)
    code = ("from autoarch.search.data import fingerprint\n"
            "from autoarch.compiler.values import SymbolCall\n"
            "print(fingerprint('digits'), fingerprint('parity'), fingerprint(SymbolCall("
            "'synthetic', (), (('shape', (3, 8, 8)), ('classes', 10)))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"}).stdout.split()
    assert out == [fingerprint("digits"), fingerprint("parity"), fingerprint(syn)]


# ---- csv ---------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def test_csv_regression_rows_stay_aligned(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.normal(5, 3, 100), rng.uniform(-10, 10, 100)
    target = 3 * a - b + 0.5
    write_csv(tmp_path / "r.csv", ["a", "b", "price"],
              [[f"{p:.6f}", f"{q:.6f}", f"{t:.6f}"] for p, q, t in zip(a, b, target, strict=True)])
    d = load_data(SymbolCall("csv", ("r.csv",), (("target", "price"),)), base_dir=tmp_path)
    assert d.task == "regression" and d.input_shape == (2,) and d.output_shape == (1,)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (64, 16, 20)
    assert d.name.startswith("csv:")
    # standardized features: mean 0, std 1 on train
    np.testing.assert_allclose(d.x_train.double().mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.double().std(0, correction=0).numpy(), 1, atol=1e-5)
    # the target is still an exact affine function of each row's (standardized) features
    x, _ = all_rows(d)
    y = torch.cat([d.y_train, d.y_val, d.y_test]).double().numpy()[:, 0]
    design = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    assert np.abs(design @ coef - y).max() < 1e-3
    np.testing.assert_allclose(np.sort(y), np.sort(target), atol=1e-4)


def test_csv_string_and_integer_targets_are_classes(tmp_path):
    rng = np.random.default_rng(2)
    k = np.repeat([0, 1, 2], 30)
    names = np.array(["cat", "dog", "eel"])
    rows = [[f"{kk + rng.uniform(0, 0.5):.4f}", f"{rng.normal():.4f}", names[kk]] for kk in k]
    write_csv(tmp_path / "c.csv", ["size", "noise", "animal"], rows)
    d = load_data(SymbolCall("csv", ("c.csv",), (("target", "animal"),)), base_dir=tmp_path)
    assert d.task == "classification" and d.n_classes == 3 and d.output_shape == (3,)
    x, y = all_rows(d)
    # labels sorted alphabetically: cat 0, dog 1, eel 2; "size" orders them
    assert np.array_equal(y[np.argsort(x[:, 0])], np.repeat([0, 1, 2], 30))
    assert np.bincount(d.y_test.numpy()).tolist() == [6, 6, 6]  # stratified
    # integer labels with few values are classes too, indexed in sorted order
    write_csv(tmp_path / "i.csv", ["f", "label"], [[i, 10 if i % 2 else 3] for i in range(40)])
    d = load_data(SymbolCall("csv", ("i.csv", "label")), base_dir=tmp_path)
    x, y = all_rows(d)
    assert d.n_classes == 2
    odd = np.argsort(np.argsort(x[:, 0])) % 2 == 1  # rank of f is f itself
    assert np.array_equal(y, odd.astype(int))


@pytest.mark.parametrize("text, target, message", [
    ("a,b,label\n" + "1,2,0\n" * 20, "lable", "no column 'lable'"),
    ("1,2,3\n" + "1,2,0\n" * 20, "label", "no header row"),
    ("a,b,label\n" + "1,x,0\n" * 20, "label", "column 'b' is 'x'"),
    ("a,b,label\n" + "1,,0\n" * 20, "label", "column 'b' is empty"),
    ("a,b,label\n" + "1,2,0\n" * 5, "label", "5 data rows"),
    ("a,b,label\n" + "1,2\n" * 20, "label", "2 values but the header has 3"),
    ("a,b,label\n" + "1,2,7\n" * 20, "label", "single value"),
    ("", "label", "is empty"),
])
def test_csv_mistakes_are_spec_errors(tmp_path, text, target, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(autoarch.SpecError, match=message) as e:
        load_data(SymbolCall("csv", ("bad.csv",), (("target", target),)), base_dir=tmp_path)
    if target == "lable":
        assert "did you mean 'label'" in str(e.value)


def test_missing_file_and_unknown_data_set_are_spec_errors(tmp_path):
    with pytest.raises(autoarch.SpecError, match="data file not found") as e:
        load_data(SymbolCall("csv", ("nope.csv",), (("target", "y"),)), base_dir=tmp_path)
    assert "spec file's folder" in str(e.value)
    with pytest.raises(autoarch.SpecError, match="data file not found"):
        load_data(SymbolCall("npz", ("nope.npz",)), base_dir=tmp_path)
    with pytest.raises(autoarch.SpecError, match="unknown data set 'digit'") as e:
        load_data(Symbol("digit"))
    assert "did you mean 'digits'" in str(e.value)


# ---- bad data is rejected, located ----------------------------------------------------


def csv_lines(header: str, rows: list[str], tmp_path: Path, name: str = "d.csv") -> SymbolCall:
    """A csv file of ``header`` and ``rows`` (line 1 is the header, data rows from line 2)."""
    (tmp_path / name).write_text("\n".join([header, *rows]) + "\n")
    return SymbolCall("csv", (name,), (("target", "y"),))


def data_error(data: SymbolCall, tmp_path: Path) -> str:
    """The one-line message loading ``data`` fails with."""
    with pytest.raises(DataError) as e:
        load_data(data, base_dir=tmp_path)
    text = str(e.value)
    assert "\n" not in text and text.startswith("error: ")
    return text


def labelled(n: int = 20) -> list[str]:
    """n rows `a,b,y` with two classes: a = row index, b = a / 2, y = a % 2."""
    return [f"{i},{i / 2},{i % 2}" for i in range(n)]


@pytest.mark.parametrize("marker", ["", "nan", "NaN", "NA", "N/A", "null", "None", "?", "-",
                                    "inf", " NULL "])
def test_a_missing_target_is_rejected_not_a_class(tmp_path, marker):
    rows = labelled()
    rows[6] = f"6,3.0,{marker}"  # data row 7: line 8 of the file
    text = data_error(csv_lines("a,b,y", rows, tmp_path), tmp_path)
    assert "d.csv, row 8, column 'y'" in text and "missing" in text


def test_a_target_that_mixes_numbers_and_text_is_rejected_at_the_first_odd_row(tmp_path):
    rows = labelled(30)
    rows[10] = "10,5.0,cat"  # line 12
    rows[20] = "20,10.0,dog"
    text = data_error(csv_lines("a,b,y", rows, tmp_path), tmp_path)
    assert "d.csv, row 12, column 'y'" in text and "'cat'" in text
    assert "numbers and text" in text
    # mostly text: the odd row is the first number
    rows = [f"{i},{i},{'cat' if i % 2 else 'dog'}" for i in range(30)]
    rows[14] = "14,14,7"  # line 16
    text = data_error(csv_lines("a,b,y", rows, tmp_path), tmp_path)
    assert "row 16, column 'y'" in text and "'7'" in text


@pytest.mark.parametrize("header, message", [
    ("a,y,y", "columns 2 and 3 are both named 'y'"),
    ("y,b,y", "columns 1 and 3 are both named 'y'"),
    ("a,a,y", "columns 1 and 2 are both named 'a'"),
    ("a,,y", "column 2 has no name"),
])
def test_duplicated_or_empty_column_names_are_rejected(tmp_path, header, message):
    rows = [f"{i},{i % 3},{i % 2}" for i in range(20)]
    text = data_error(csv_lines(header, rows, tmp_path), tmp_path)
    assert "d.csv, row 1" in text and message in text


@pytest.mark.parametrize("value", ["1e300", "-3.5e38", "1e39"])
def test_a_feature_beyond_float32_is_rejected_not_zeroed(tmp_path, value):
    rows = labelled()
    rows[7] = f"7,{value},1"  # line 9
    text = data_error(csv_lines("a,b,y", rows, tmp_path), tmp_path)
    assert "d.csv, row 9, column 'b'" in text and "float32" in text


def test_the_largest_float32_values_are_accepted(tmp_path):
    rows = labelled()
    rows[7] = "7,3.4e38,1"
    rows[8] = "8,-3.4e38,0"
    d = load_data(csv_lines("a,b,y", rows, tmp_path), base_dir=tmp_path)
    assert all(torch.isfinite(t).all() for t in (d.x_train, d.x_val, d.x_test))


def test_a_regression_target_beyond_float32_is_rejected(tmp_path):
    rows = [f"{i},{i * 0.37 + 0.5}" for i in range(20)]
    rows[4] = "4,-2e40"  # line 6
    (tmp_path / "r.csv").write_text("\n".join(["a,y", *rows]) + "\n")
    text = data_error(SymbolCall("csv", ("r.csv", "y")), tmp_path)
    assert "r.csv, row 6, column 'y'" in text and "float32" in text


def test_a_standardized_feature_that_overflows_float32_is_rejected(tmp_path):
    # which rows are held out depends only on the labels: find a test row by an id column
    n = 30
    ids = [f"{i},0,{i % 2}" for i in range(n)]
    d = load_data(csv_lines("id,c,y", ids, tmp_path), base_dir=tmp_path)
    # a standardized id keeps the ids' order; ids are 0..n-1
    ranks = np.argsort(np.argsort(all_rows(d)[0][:, 0]))
    test_id = int(ranks[len(d.x_train) + len(d.x_val)])
    # column c: tiny differences on every row (train std ~5e-151), 1.0 on a test row
    rows = [f"{i},{1e-150 * (i % 2)},{i % 2}" for i in range(n)]
    rows[test_id] = f"{test_id},1.0,{test_id % 2}"
    text = data_error(csv_lines("id,c,y", rows, tmp_path, "e.csv"), tmp_path)
    assert f"e.csv, row {test_id + 2}, column 'c'" in text and "standardiz" in text


def test_npz_values_beyond_float32_are_rejected_with_their_index(tmp_path):
    x = np.zeros((20, 3))
    x[4, 2] = 1e300
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(20) % 2)
    text = data_error(SymbolCall("npz", ("a.npz",)), tmp_path)
    assert "a.npz" in text and "array 'x'" in text and "[4, 2]" in text and "float32" in text
    y = np.linspace(0, 1, 20)
    y[11] = -1e39
    np.savez(tmp_path / "b.npz", x=np.zeros((20, 3)), y=y)
    text = data_error(SymbolCall("npz", ("b.npz",)), tmp_path)
    assert "array 'y'" in text and "[11]" in text
    x = np.zeros((20, 3), dtype=np.float32)
    x[2, 1] = np.nan
    np.savez(tmp_path / "c.npz", x=x, y=np.arange(20) % 2)
    text = data_error(SymbolCall("npz", ("c.npz",)), tmp_path)
    assert "array 'x'" in text and "[2, 1]" in text and "nan" in text.lower()


def test_many_distinct_integer_labels_say_why_they_are_a_regression_target(tmp_path):
    rows = [f"{i},{i % 150}" for i in range(300)]
    d = load_data(csv_lines("a,y", rows, tmp_path), base_dir=tmp_path)
    assert d.task == "regression"
    assert ("target 'y' has 150 distinct integer values, more than 100, so it is read as a "
            "regression target") in d.task_reason
    rows = [f"{i},{i % 100}" for i in range(300)]
    d = load_data(csv_lines("a,y", rows, tmp_path, "c.csv"), base_dir=tmp_path)
    assert d.task == "classification" and d.n_classes == 100
    assert "100 distinct integer values" in d.task_reason and "classes" in d.task_reason
    rows = [f"{i},{i * 0.5}" for i in range(20)]
    d = load_data(csv_lines("a,y", rows, tmp_path, "f.csv"), base_dir=tmp_path)
    assert d.task == "regression" and "0.5" in d.task_reason  # the first non-integer
    rows = [f"{i},{'ab'[i % 2]}" for i in range(20)]
    d = load_data(csv_lines("a,y", rows, tmp_path, "t.csv"), base_dir=tmp_path)
    assert d.task == "classification" and "text" in d.task_reason
    np.savez(tmp_path / "f.npz", x=np.zeros((20, 2)), y=np.arange(20) % 2 * 1.0)
    d = load_data(SymbolCall("npz", ("f.npz",)), base_dir=tmp_path)
    assert d.task == "regression" and "float64" in d.task_reason
    np.savez(tmp_path / "i.npz", x=np.zeros((20, 2)), y=np.arange(20) % 2)
    d = load_data(SymbolCall("npz", ("i.npz",)), base_dir=tmp_path)
    assert d.task == "classification" and "int64" in d.task_reason
    for name in BUNDLED:
        d = load_data(name)
        assert name in d.task_reason and d.task in d.task_reason
    d = load_data(synthetic([4], 3))
    assert "classification" in d.task_reason


# ---- big and hostile csv files ---------------------------------------------------------


def write_rows(path: Path, lines: list[str], newline: str = "\n") -> int:
    """Write ``lines`` (each may hold quoted line breaks); the number of the last line."""
    text = newline.join(lines) + newline
    path.write_bytes(text.encode())
    return text.count(newline)


def mid_size_rows(n: int) -> list[str]:
    """n rows of id,a,b,y (about 40 bytes each): y = id % 3, b a fixed function of id."""
    return [f"{i},{i * 0.001:.6f},{math.sin(i) * 1000:.9f},{i % 3}" for i in range(n)]


@pytest.mark.parametrize("last, message", [
    ("x,1,2,0", "column 'id' is 'x'"),
    ("1,2,0", "3 values but the header has 4"),
    ("1,2,3,", "the target is missing (empty)"),
    ("1,2,3,NA", "the target is missing ('NA')"),
    ("1,1e300,3,1", "column 'a' is 1e+300, beyond float32"),
    ("1,2,3,cat", "'cat' is text, but the targets before it are numbers (row 2: '0')"),
])
def test_a_bad_last_row_of_a_mid_size_file_is_named_by_its_line(tmp_path, last, message):
    rows = mid_size_rows(60_000)  # about 2.4 MB: several blocks of lines
    last_line = write_rows(tmp_path / "m.csv", ["id,a,b,y", *rows, last])
    assert last_line == 60_002
    text = data_error(SymbolCall("csv", ("m.csv", "y")), tmp_path)
    assert f"m.csv, row {last_line}" in text and message in text


def test_a_surplus_value_in_a_later_block_is_found_with_text_labels(tmp_path):
    rows = [f"{i},{i % 7},{'cat' if i % 2 else 'dog'}" for i in range(100_000)]
    rows[90_000] += ",9"  # line 90,002, past the first blocks of lines
    write_rows(tmp_path / "w.csv", ["a,b,y", *rows])
    text = data_error(SymbolCall("csv", ("w.csv", "y")), tmp_path)
    assert "w.csv, row 90002: 4 values but the header has 3 columns" in text


def test_rows_are_numbered_by_file_lines_with_blank_lines_and_quoted_line_breaks(tmp_path):
    from autoarch.search import data as data_module

    # a quoted line break right where a block of lines ends, blank lines, CRLF line ends
    lines = ["id,a,b,y"]
    size = len(lines[0]) + 2
    i = 0
    while size < data_module._CSV_BLOCK_CHARS - 30:
        lines.append(f"{i},{i * 0.5},{i % 7},{'cat' if i % 2 else 'dog'}")
        size += len(lines[-1]) + 2
        i += 1
    lines.append(f'{i},{i * 0.5},{i % 7},"two\r\nlines"')  # one row on two lines
    i += 1
    for _ in range(3):
        lines.append(f"{i},{i * 0.5},{i % 7},{'cat' if i % 2 else 'dog'}")
        i += 1
    lines += ["", "   ", ""]  # blank lines
    good = lines + [f"{j},{j * 0.5},{j % 7},{'cat' if j % 2 else 'dog'}"
                    for j in range(i, i + 5000)]
    write_rows(tmp_path / "g.csv", good, "\r\n")
    d = load_data(SymbolCall("csv", ("g.csv", "y")), base_dir=tmp_path)
    x, y = all_rows(d)
    n = len(good) - 1 - 3  # the header and the three blank lines are not rows
    assert len(x) == n and d.n_classes == 3
    # labels sort as text: cat 0, dog 1, "two\r\nlines" 2; rows stay aligned with their id
    order = np.argsort(x[:, 0])
    ids = np.arange(n)
    expected = np.where(ids % 2 == 1, 0, 1)
    expected[ids == (i - 4)] = 2
    assert np.array_equal(y[order], expected)
    a = x[order, 1]
    assert np.abs(np.polyval(np.polyfit(ids * 0.5, a, 1), ids * 0.5) - a).max() < 1e-4
    # a bad row after them is named by its line in the file
    bad = lines + ["1,2,3,cat"] * 10 + ["1,oops,3,cat"]
    last_line = write_rows(tmp_path / "b.csv", bad, "\r\n")
    text = data_error(SymbolCall("csv", ("b.csv", "y")), tmp_path)
    assert f"b.csv, row {last_line}, column 'a' is 'oops'" in text


def test_a_bad_row_right_after_a_blank_line_counts_the_blank_line(tmp_path):
    rows = labelled()
    write_rows(tmp_path / "d.csv", ["a,b,y", *rows[:5], "", "", *rows[5:9], "1,x,0",
                                     *rows[9:]])
    text = data_error(SymbolCall("csv", ("d.csv", "y")), tmp_path)
    assert "d.csv, row 13, column 'b' is 'x'" in text  # 1 header + 5 + 2 blank + 4 + 1


def test_progress_is_reported_for_large_files(tmp_path, monkeypatch):
    from autoarch.search import data as data_module

    path = tmp_path / "p.csv"
    write_rows(path, ["id,a,b,y", *mid_size_rows(60_000)])
    size = path.stat().st_size
    calls = []
    load_data(SymbolCall("csv", ("p.csv", "y")), base_dir=tmp_path,
              progress=lambda done, total: calls.append((done, total)))
    assert calls == []  # 2.4 MB is below the size that reports progress
    monkeypatch.setattr(data_module, "PROGRESS_MIN_BYTES", 1_000_000)
    monkeypatch.setattr(data_module, "PROGRESS_EVERY_S", 0.0)
    load_data(SymbolCall("csv", ("p.csv", "y")), base_dir=tmp_path, seed=1,
              progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 3 and calls[-1] == (size, size)
    assert all(t == size and 0 <= done <= size for done, t in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_a_big_valid_file_loads_the_same_rows_as_numpy(tmp_path):
    rows = mid_size_rows(40_000)
    write_rows(tmp_path / "v.csv", ["id,a,b,y", *rows])
    d = load_data(SymbolCall("csv", ("v.csv", "y")), base_dir=tmp_path)
    ref = np.loadtxt(tmp_path / "v.csv", delimiter=",", skiprows=1)
    x, y = all_rows(d)
    order = np.argsort(x[:, 0])  # standardized ids keep the ids' order
    assert np.array_equal(y[order], ref[:, 3].astype(int))
    n_train = len(d.x_train)
    train_ids = np.sort(np.argsort(np.argsort(x[:, 0]))[:n_train])
    for j in (1, 2):  # each feature is the file's column standardized with train statistics
        col = ref[:, j]
        mean, std = col[train_ids].mean(), col[train_ids].std()
        np.testing.assert_allclose(x[order, j], (col - mean) / std, atol=1e-5)


def test_binary_files_are_refused_without_showing_their_contents(tmp_path):
    secret = "hunter2-secret"
    (tmp_path / "nul.csv").write_bytes(f"a,b,y\n1,2,{secret}\x00\x01\n".encode())
    (tmp_path / "latin.csv").write_bytes(f"a,b,y\n1,2,caf\xe9 {secret}\n".encode("latin-1"))
    for name in ("nul.csv", "latin.csv"):
        text = data_error(SymbolCall("csv", (name, "y")), tmp_path)
        assert f"{name} is not a text csv file" in text and secret not in text
    # past the first 64 KB: named by its line
    body = ["a,b,y", *[f"{i},{i},{i % 2}" for i in range(20_000)]]
    (tmp_path / "late.csv").write_bytes(("\n".join(body) + "\n").encode() + b"1,2,\x00\n")
    text = data_error(SymbolCall("csv", ("late.csv", "y")), tmp_path)
    assert "late.csv is not a text csv file: line 20002 holds NUL bytes" in text
    (tmp_path / "late8.csv").write_bytes(("\n".join(body) + "\n").encode() + b"1,2,\xff\n")
    text = data_error(SymbolCall("csv", ("late8.csv", "y")), tmp_path)
    assert "late8.csv is not a text csv file" in text and "UTF-8" in text


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_process_environment_is_never_echoed(monkeypatch):
    monkeypatch.setenv("AUTOARCH_TEST_SECRET", "s3cr3t-value")
    with pytest.raises(DataError) as e:
        load_data(SymbolCall("csv", ("/proc/self/environ",), (("target", "x"),)))
    text = str(e.value)
    assert "not a text csv file" in text
    assert "s3cr3t" not in text and os.environ.get("PATH", "PATH") not in text


@pytest.mark.parametrize("first_line", [
    "password=hunter2-secret",  # one cell: not a header
    ",".join(f"c{i}" for i in range(60)) + ",hunter2-secret",  # too many cells to list
    "a,hunter2-secret-" + "z" * 40,  # a name too long to be a column name
    "a,b\x07hunter2-secret",  # a control character
])
def test_a_first_line_that_is_not_a_header_is_not_listed(tmp_path, first_line):
    (tmp_path / "s.csv").write_text(first_line + "\n1,2\n")
    text = data_error(SymbolCall("csv", ("s.csv", "label")), tmp_path)
    assert "s.csv has no column 'label'" in text
    assert "hunter2" not in text and "do not look like column names" in text


def test_a_header_is_listed_and_quoted_cells_are_short_and_escaped(tmp_path):
    write_rows(tmp_path / "h.csv", ["size,weight,label", "1,2,0"])
    text = data_error(SymbolCall("csv", ("h.csv", "lable")), tmp_path)
    assert "did you mean 'label'" in text and "its columns are: label, size, weight" in text
    rows = labelled()
    rows[3] = "3,\x1b[2J\x1b[31mred" + "z" * 50 + ",1"
    write_rows(tmp_path / "e.csv", ["a,b,y", *rows])
    text = data_error(SymbolCall("csv", ("e.csv", "y")), tmp_path)
    assert "\x1b" not in text and "\\x1b[2J" in text
    assert "column 'b' is '\\x1b[2J\\x1b[31mredzzzzzzzz...'" in text  # 20 characters shown


def test_an_unterminated_quote_is_a_located_error(tmp_path):
    rows = labelled()
    write_rows(tmp_path / "q.csv", ["a,b,y", *rows[:12], '12,"6.0,0', *rows[13:]])
    text = data_error(SymbolCall("csv", ("q.csv", "y")), tmp_path)
    assert "q.csv, row 14 (lines 14 to 21): 2 values but the header has 3" in text
    assert "unclosed quote" in text


# ---- npz ---------------------------------------------------------------------------


def test_npz_sequences_classification(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 5, 3)).astype(np.float32)
    labels = np.where(x[:, 0, 0] > 0, 7, 3)  # non-contiguous labels: mapped 3 -> 0, 7 -> 1
    np.savez(tmp_path / "s.npz", x=x, y=labels)
    d = load_data(SymbolCall("npz", ("s.npz",)), base_dir=tmp_path)
    assert d.task == "classification" and d.n_classes == 2
    assert d.input_shape == (5, 3) and d.output_shape == (2,)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (32, 8, 10)
    xs, y = all_rows(d)
    assert np.array_equal(y, (xs[:, 0, 0] > 0).astype(int))
    # rows are the file's rows, unchanged (npz arrays are used as given)
    assert sorted(map(tuple, xs.reshape(50, -1).round(6))) == \
        sorted(map(tuple, x.astype(np.float64).reshape(50, -1).round(6)))


def test_npz_regression_with_given_val_and_test(tmp_path):
    rng = np.random.default_rng(4)
    arrays = {}
    for suffix, n in (("", 30), ("_val", 7), ("_test", 9)):
        xx = rng.normal(size=(n, 4))
        arrays["X" + suffix] = xx
        arrays["y" + suffix] = np.stack([xx.sum(1), xx[:, 0]], 1)
    np.savez(tmp_path / "r.npz", **arrays)
    d = load_data(SymbolCall("npz", (str(tmp_path / "r.npz"),)))
    assert d.task == "regression" and d.output_shape == (2,) and d.n_classes is None
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (30, 7, 9)
    np.testing.assert_allclose(d.x_val.numpy(), arrays["X_val"], rtol=1e-6)
    np.testing.assert_allclose(d.y_test.numpy(), arrays["y_test"], rtol=1e-6)
    np.testing.assert_allclose(d.y_train[:, 0].numpy(), d.x_train.sum(1).numpy(), atol=1e-5)


@pytest.mark.parametrize("arrays, message", [
    ({"inputs": np.zeros((20, 2)), "y": np.zeros(20)}, "no array 'x'"),
    ({"x": np.zeros((20, 2))}, "no array 'y'"),
    ({"x": np.zeros((20, 2)), "y": np.zeros(19)}, "x has 20 rows but y has 19"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4)}, "4 rows"),
    ({"x": np.full((20, 2), np.nan), "y": np.arange(20) % 2}, r"index \[0, 0\] is nan"),
    ({"x": np.zeros((20, 2)), "y": np.zeros(20, dtype=int)}, "single class"),
    ({"x": np.zeros((20, 2)), "y": np.arange(20) % 2, "x_val": np.zeros((5, 3)),
      "y_val": np.arange(5) % 2}, "x_val has examples of shape"),
    ({"x": np.zeros((20, 2)), "y": np.arange(20) % 2, "x_test": np.zeros((5, 2))},
     "x_test without y_test"),
])
def test_npz_mistakes_are_spec_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(autoarch.SpecError, match=message):
        load_data(SymbolCall("npz", ("bad.npz",)), base_dir=tmp_path)


def npz_error(path: Path) -> str:
    return data_error(SymbolCall("npz", (path.name,)), path.parent)


def test_a_renamed_npy_file_is_a_one_line_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((20, 3)))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    text = npz_error(tmp_path / "a.npz")
    assert "a.npz is a single .npy array, not an .npz archive" in text and "savez" in text


def test_a_truncated_npz_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "full.npz", x=np.zeros((20, 3)), y=np.arange(20) % 2)
    data = (tmp_path / "full.npz").read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        (tmp_path / "t.npz").write_bytes(data[:cut])
        text = npz_error(tmp_path / "t.npz")
        assert "t.npz" in text and "damaged or truncated" in text


def test_a_damaged_member_of_an_npz_is_a_one_line_error(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", x=np.arange(4000.0).reshape(200, 20),
                        y=np.arange(200) % 2)
    data = bytearray((tmp_path / "c.npz").read_bytes())
    data[200:260] = bytes(60)  # inside the compressed x.npy
    (tmp_path / "c.npz").write_bytes(bytes(data))
    text = npz_error(tmp_path / "c.npz")
    assert "c.npz" in text and "array 'x'" in text and "damaged" in text


def test_a_zip_that_is_not_an_npz_is_a_one_line_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("x.txt", "1,2,3\n")
        z.writestr("y.csv", "0\n")
    text = npz_error(tmp_path / "z.npz")
    assert "z.npz is a zip file with no .npy arrays" in text


def test_object_arrays_in_an_npz_are_refused_without_unpickling(tmp_path):
    x = np.empty((20, 2), dtype=object)
    x[:] = 1.0
    np.savez(tmp_path / "o.npz", x=x, y=np.arange(20) % 2)
    text = npz_error(tmp_path / "o.npz")
    assert "array 'x' holds Python objects" in text
    # a pickle that is not an npz at all
    import pickle

    (tmp_path / "p.npz").write_bytes(pickle.dumps({"x": [1, 2]}))
    assert "p.npz is not an .npz archive" in npz_error(tmp_path / "p.npz")


def test_an_npz_with_no_rows_says_so(tmp_path):
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 3)), y=np.zeros(0, dtype=np.int64))
    assert "e.npz: x has no rows" in npz_error(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", x=np.zeros((0, 3)), y=np.zeros(0))
    assert "f.npz: x has no rows" in npz_error(tmp_path / "f.npz")


def test_npz_arrays_that_are_not_used_are_not_read(tmp_path):
    junk = np.empty(3, dtype=object)
    np.savez(tmp_path / "k.npz", x=np.zeros((20, 2)), y=np.arange(20) % 2, notes=junk)
    d = load_data(SymbolCall("npz", ("k.npz",)), base_dir=tmp_path)
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 20


def test_npz_that_is_not_an_archive_is_a_spec_error(tmp_path):
    (tmp_path / "text.npz").write_text("a,b\n1,2\n")
    with pytest.raises(autoarch.SpecError, match=r"text.npz is not an .npz archive \(not a zip"):
        load_data(SymbolCall("npz", ("text.npz",)), base_dir=tmp_path)
