"""The rational unit's C kernel (``impl="cpu"``): values and every gradient against the
float64 formula, and how it is built, cached, shared and done without."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_kernels import by_hand, coefficients

from autoarch.kernels import cpu, rational

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")),
    reason="no C compiler on this machine (.ci/run installs gcc)")


def reference_grads(x, a, b, w):
    """The formula's value and gradients in float64 (autograd through ``by_hand``'s
    twin, the plain torch form, on the same float64 leaves)."""
    leaves = [t.detach().double().requires_grad_(True) for t in (x, a, b)]
    xs, as_, bs = leaves
    full = as_ if as_.dim() == 2 else as_.expand(bs.shape[0], -1)
    y = rational(xs, full, bs, impl="torch")
    (y * w).sum().backward()
    return y.detach(), [t.grad for t in leaves]


def kernel_grads(x, a, b, w):
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, a, b)]
    y = rational(*leaves, impl="cpu")
    (y.double() * w).sum().backward()
    return y.detach(), [t.grad for t in leaves]


def rel(u: torch.Tensor, v: torch.Tensor) -> float:
    return ((u.double() - v).abs().max() / v.abs().max().clamp_min(1e-12)).item()


@needs_compiler
@pytest.mark.parametrize(("rows", "d", "g", "m", "n"), [
    (64, 32, 8, 5, 4),    # KAT's degrees, the unrolled copy, whole blocks of 8
    (37, 15, 3, 5, 4),    # odd width: a last block of 7 channels, odd group count
    (20, 7, 7, 5, 4),     # one channel per group, narrower than a block
    (50, 24, 24, 5, 4),   # groups = width
    (33, 10, 5, 2, 5),    # other degrees: the general loop
    (16, 9, 1, 0, 1),     # constant numerator: P' = 0
    (16, 12, 3, 4, 0),    # no denominator terms: Q = 1
    (5000, 16, 4, 5, 4),  # many rows: the coefficient sums flushed to double
])
def test_values_and_every_gradient_match_the_float64_formula(rows, d, g, m, n):
    gen = torch.Generator().manual_seed(rows + d)
    x64 = torch.randn(rows, d, generator=gen, dtype=torch.float64) * 1.5
    a64, b64 = coefficients(g, m, n, seed=d)
    w = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    x, a, b = x64.float(), a64.float(), b64.float()
    y, grads = kernel_grads(x, a, b, w)
    # the inputs as the kernel saw them (rounded to float32), by the element-wise formula
    assert rel(y, by_hand(x.double(), a.double(), b.double())) < 1e-5
    want_y, want = reference_grads(x, a, b, w)
    assert rel(y, want_y) < 1e-5
    for got, ref in zip(grads, want, strict=True):
        assert got.dtype == torch.float32
        if ref is None:  # no denominator terms: b takes no part
            assert got.numel() == 0
        else:
            assert rel(got, ref) < 1e-4


@needs_compiler
def test_a_shared_one_dimensional_numerator_gets_every_groups_gradient():
    """KAT's form: one numerator for all groups, passed 1-D (no expand node)."""
    x = torch.randn(40, 16)
    shared, b = torch.randn(6) * 0.4, torch.randn(4, 4) * 0.4
    w = torch.randn(40, 16, dtype=torch.float64)
    y, (gx, ga, gb) = kernel_grads(x, shared, b, w)
    assert ga.shape == (6,)
    want_y, (wx, wa, wb) = reference_grads(x, shared, b, w)
    assert rel(y, want_y) < 1e-5
    assert rel(gx, wx) < 1e-4 and rel(ga, wa) < 1e-4 and rel(gb, wb) < 1e-4
    # every other form agrees on a 1-D numerator
    for impl in ("torch", "fused"):
        assert rel(rational(x, shared, b, impl=impl), want_y) < 1e-5


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_come_back_in_their_dtype(dtype):
    x = (torch.randn(64, 32) * 2).to(dtype)
    a, b = coefficients(4, dtype=torch.float32)
    # the upstream gradient reaches the kernel in the output's dtype: round it alike
    w = torch.randn(64, 32, dtype=torch.float64).to(dtype).double()
    y, (gx, ga, gb) = kernel_grads(x, a, b, w)
    assert y.dtype == gx.dtype == dtype and ga.dtype == gb.dtype == torch.float32
    want_y, (wx, wa, wb) = reference_grads(x, a, b, w)
    tol = 1e-2 if dtype == torch.float16 else 4e-2  # the output's rounding
    assert rel(y, want_y) < tol and rel(gx, wx) < tol
    assert rel(ga, wa) < 1e-4 and rel(gb, wb) < 1e-4  # float32 accumulations


@needs_compiler
def test_auto_takes_the_kernel_on_cpu_float32_and_the_fused_form_for_float64():
    a, b = coefficients(2, dtype=torch.float32)
    y = rational(torch.randn(4, 8, requires_grad=True), a, b)
    assert type(y.grad_fn).__name__ == "_CRationalBackward"
    y64 = rational(torch.randn(4, 8, dtype=torch.float64, requires_grad=True), a.double(), b.double())
    assert type(y64.grad_fn).__name__ == "_RationalBackward"
    with pytest.raises(ValueError, match="at most 32-bit"):
        rational(torch.randn(4, 8, dtype=torch.float64), a.double(), b.double(), impl="cpu")
    big, _ = coefficients(2, m=16)  # 17 coefficients: beyond the kernel's bound
    assert type(rational(torch.randn(4, 8, requires_grad=True), big.float(), b).grad_fn
                ).__name__ == "_RationalBackward"


@needs_compiler
def test_the_kernel_module_never_compiles_for_a_new_shape():
    """The C kernel is built once per machine; shapes are arguments, not builds."""
    import torch._dynamo

    torch._dynamo.reset()
    before = sum(torch._dynamo.utils.counters["stats"].values())
    a, b = torch.randn(6) * 0.3, torch.randn(4, 4) * 0.3
    for shape in ((64, 8, 32), (7, 8, 32), (3, 40)):
        x = torch.randn(*shape, requires_grad=True)
        rational(x, a, b, impl="cpu").sum().backward()
        assert torch.isfinite(x.grad).all()
    assert sum(torch._dynamo.utils.counters["stats"].values()) == before


# ---- building, caching, doing without ------------------------------------------------

PROBE = textwrap.dedent("""
    import json, sys, torch
    from autoarch.kernels import cpu, rational
    from autoarch.kernels.rational import _c_kernels
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = rational(x, torch.tensor([0.0, 1.0, 0.1]), torch.ones(3, 2) * 0.2)
    y.sum().backward()
    print(json.dumps({"node": type(y.grad_fn).__name__, "why": cpu.why_not("rational_cpu"),
                      "loaded": _c_kernels() is not None,
                      "dir": str(cpu.cache_dir()), "grad": float(x.grad.abs().sum())}))
""")


def probe(env: dict[str, str]) -> dict:
    import json

    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@needs_compiler
def test_built_once_into_the_cache_then_loaded_by_the_next_process(tmp_path):
    env = {"AUTOARCH_CACHE_DIR": str(tmp_path)}
    first = probe(env)
    assert first["node"] == "_CRationalBackward" and first["loaded"]
    built = list((tmp_path / "kernels").glob("rational_cpu-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    second = probe(env)
    assert second["node"] == "_CRationalBackward"
    assert [p.stat().st_mtime_ns for p in (tmp_path / "kernels").iterdir()] == [stamp]


@needs_compiler
def test_processes_building_at_once_each_get_a_whole_library(tmp_path):
    env = {**os.environ, "AUTOARCH_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert all('"_CRationalBackward"' in o for o, _ in outs)
    left = sorted(p.name for p in (tmp_path / "kernels").iterdir())
    assert len(left) == 1 and left[0].endswith(".so")  # no temporary file left behind


@needs_compiler
def test_a_killed_builds_temporary_file_is_cleared_by_a_later_build(tmp_path):
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    stale = kernels / "rational_cpu-0123456789abcdef.x1y2z3.tmp"
    stale.write_bytes(b"half a library")
    long_ago = stale.stat().st_mtime - cpu.STALE_S - 60
    os.utime(stale, (long_ago, long_ago))
    assert probe({"AUTOARCH_CACHE_DIR": str(tmp_path)})["node"] == "_CRationalBackward"
    assert not stale.exists()


def test_without_a_working_compiler_the_fused_form_runs_and_why_is_said(tmp_path):
    failing = tmp_path / "cc"
    failing.write_text("#!/bin/sh\necho 'cc: broken on purpose' >&2\nexit 1\n")
    failing.chmod(0o755)
    out = probe({"AUTOARCH_CACHE_DIR": str(tmp_path / "cache"), "CC": str(failing)})
    assert out["node"] == "_RationalBackward" and not out["loaded"]
    assert "failed" in out["why"] and "broken on purpose" in out["why"]
    off = probe({"AUTOARCH_CPU_KERNELS": "0"})
    assert off["node"] == "_RationalBackward" and off["why"] == "AUTOARCH_CPU_KERNELS=0"
    assert off["grad"] == pytest.approx(out["grad"], rel=1e-5)


@needs_compiler
def test_an_unusable_cache_directory_falls_back_to_a_private_temporary_one(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = probe({"AUTOARCH_CACHE_DIR": str(blocker / "cache"), "TMPDIR": str(tmp)})
    assert out["node"] == "_CRationalBackward"
    assert blocker.read_text() == "not a directory"  # not ours: untouched
    assert list(tmp.iterdir()) == []  # built in a directory of its own, removed after


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOARCH_CACHE_DIR", str(tmp_path / "x"))
    assert cpu.cache_dir() == tmp_path / "x" / "kernels"
    monkeypatch.delenv("AUTOARCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cpu.cache_dir() == tmp_path / "xdg" / "autoarch" / "kernels"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cpu.cache_dir() == Path.home() / ".cache" / "autoarch" / "kernels"
