"""The Triton GLA kernels (forward and backward), run through Triton's CPU interpreter.

TRITON_INTERPRET=1 must be set before the kernels are defined, so the checks run in a
fresh Python process; values and the gradients of q, k, v and log_gates are compared
with the float64 recurrence on small shapes (the interpreter runs each program in
Python): causal and not, normalised and not, lengths off the chunk grid, strong decay
on a longer sequence (where the factored chunked form overflows in fp32), several V
blocks, non-contiguous and half-precision inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from autoarch.kernels import gla

#: a loop over a bound passed at run time, the form the GLA kernels loop over chunks in.
#: Triton 3.6's interpreter cannot run it with numpy >= 2.4 (it takes int() of a
#: one-element array, an error since numpy 2.4); Triton 3.7 can, and the GPU with 3.6
#: runs the kernels (checked on an H200)
PROBE = textwrap.dedent("""
    import torch, triton, triton.language as tl

    @triton.jit
    def _count(out, n, STEP: tl.constexpr):
        total = 0
        for s in range(0, n, STEP):
            total += 1
        tl.store(out, total)

    out = torch.zeros(1, dtype=torch.int32)
    try:
        _count[(1,)](out, 10, STEP=4)
    except Exception as e:  # noqa: BLE001
        if "0-dimensional" not in str(e):
            raise
        print("INTERPRETER-CANNOT-LOOP", triton.__version__)
    else:
        assert out.item() == 3, out
        print("INTERPRETER-OK")
""")

SCRIPT = textwrap.dedent("""
    import torch
    from autoarch.kernels import gla

    def inputs(lead, n, f, dv, scale, seed):
        gen = torch.Generator().manual_seed(seed)
        q = torch.rand(*lead, n, f, generator=gen, dtype=torch.float64) + 0.1
        k = torch.rand(*lead, n, f, generator=gen, dtype=torch.float64) + 0.1
        v = torch.randn(*lead, n, dv, generator=gen, dtype=torch.float64)
        g = -torch.rand(*lead, n, f, generator=gen, dtype=torch.float64) * scale
        w = torch.randn(*lead, n, dv, generator=gen, dtype=torch.float64)
        return [q, k, v, g], w

    def check(tensors, w, tol, causal=True, normalize=True, dtype=torch.float32, **kw):
        leaves = [t.to(dtype).detach().requires_grad_(True) for t in tensors]
        y = gla(*leaves, causal=causal, impl="triton", normalize=normalize, **kw)
        assert y.dtype == dtype and y.shape == w.shape
        assert torch.isfinite(y).all()
        (y.double() * w).sum().backward()
        refs = [t.detach().double().requires_grad_(True) for t in leaves]
        want = gla(*refs, causal=causal, impl="torch", normalize=normalize)
        (want * w).sum().backward()
        pairs = [(y, want)] + [(a.grad, b.grad) for a, b in zip(leaves, refs)]
        for name, (got, ref) in zip(("out", "q", "k", "v", "log_gates"), pairs):
            assert got.dtype == dtype and torch.isfinite(got).all(), name
            err = ((got.double() - ref).abs().max() / ref.abs().max()).item()
            assert err < tol, (name, causal, normalize, dtype, err)

    small, w = inputs((1, 2), 21, 8, 5, 0.2, 0)        # chunks of 16 and 5
    for normalize in (True, False):
        check(small, w, 1e-4, normalize=normalize)
        check(small, w, 1e-4, causal=False, normalize=normalize)

    strong, w = inputs((1, 1), 100, 8, 5, 20.0, 1)     # log alpha down to -20
    q, k, v, g = (t.float() for t in strong)
    assert not torch.isfinite(gla(q, k, v, g, impl="chunked", normalize=False)).all()
    check(strong, w, 1e-4, normalize=False)
    check(strong, w, 1e-4)

    wide, w = inputs((2,), 17, 20, 70, 1.0, 2)         # padded F, two V blocks, chunk 32
    check(wide, w, 1e-4, normalize=False, chunk=32)

    (q, k, v, g), w = inputs((1, 2), 19, 8, 5, 0.5, 3)  # non-contiguous views
    q = q.transpose(-1, -2).contiguous().transpose(-1, -2)
    k = torch.cat([k, k], dim=-1)[..., ::2]
    v = v.transpose(0, 1).contiguous().transpose(0, 1)
    g = g.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not any(t.is_contiguous() for t in (q, k, g))
    check([q, k, v, g], w, 1e-4)

    half, w = inputs((1, 2), 21, 8, 5, 0.5, 4)          # half precision in and out
    check(half, w, 1e-2, dtype=torch.float16)
    print("TRITON-GLA-OK")
""")


def test_triton_gla_matches_the_recurrence_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                           text=True, timeout=120)
    if "INTERPRETER-CANNOT-LOOP" in probe.stdout:
        pytest.skip(f"this Triton's interpreter cannot run a loop over a run-time bound "
                    f"({probe.stdout.split()[-1]}; Triton >= 3.7 can)")
    assert probe.returncode == 0 and "INTERPRETER-OK" in probe.stdout, \
        probe.stdout + probe.stderr
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "TRITON-GLA-OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreter is on")
@pytest.mark.parametrize("causal", [True, False])
def test_triton_gla_on_a_cpu_tensor_without_the_interpreter_is_a_clear_error(causal):
    q, k, g = torch.rand(1, 4, 8), torch.rand(1, 4, 8), -torch.rand(1, 4, 8)
    v = torch.randn(1, 4, 3)
    with pytest.raises(ValueError, match="CUDA tensor, or TRITON_INTERPRET=1"):
        gla(q, k, v, g, causal=causal, impl="triton")


def test_auto_picks_the_chunked_form_on_a_cpu_tensor():
    q, k, g = torch.rand(1, 5, 4), torch.rand(1, 5, 4), -torch.rand(1, 5, 4)
    v = torch.randn(1, 5, 3)
    torch.testing.assert_close(gla(q, k, v, g), gla(q, k, v, g, impl="chunked"))
