"""The Triton kernels of the rational unit, run through Triton's CPU interpreter.

TRITON_INTERPRET=1 must be set before the kernels are defined, so the checks run
in a fresh Python process; they compare values and every gradient with the
float64 reference on small shapes (the interpreter runs each program in Python).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from autoarch.kernels import rational

SCRIPT = textwrap.dedent("""
    import torch
    from autoarch.kernels import rational

    def check(x, g, dtype, tol):
        torch.manual_seed(g)
        a = (torch.randn(g, 6) * 0.5).requires_grad_(True)
        b = (torch.randn(g, 4) * 0.5).requires_grad_(True)
        x = x.to(dtype).requires_grad_(True)
        w = torch.randn(x.shape)
        y = rational(x, a, b, impl="triton")
        assert y.dtype == dtype
        (y.float() * w).sum().backward()
        xr, ar, br = (t.detach().double().requires_grad_(True) for t in (x, a, b))
        ref = rational(xr, ar, br, impl="torch")
        (ref * w.double()).sum().backward()
        for got, want in ((y, ref), (x.grad, xr.grad), (a.grad, ar.grad), (b.grad, br.grad)):
            err = ((got.double() - want).abs().max() / want.abs().max()).item()
            assert err < tol, (g, dtype, err)

    check(torch.randn(5, 7, 16), 4, torch.float32, 1e-4)     # groups of 4 channels
    check(torch.randn(40, 8), 1, torch.float32, 1e-4)        # one group
    check(torch.randn(3, 8), 8, torch.float32, 1e-4)         # g = d
    check(torch.randn(16, 6).t(), 2, torch.float32, 1e-4)    # non-contiguous
    check(torch.randn(9, 16), 4, torch.float16, 2e-2)        # half precision in
    check(torch.randn(9, 16), 4, torch.bfloat16, 5e-2)       # bfloat16 in
    check(torch.randn(6, 15), 3, torch.float32, 1e-4)        # odd width, odd groups
    print("TRITON-OK")
""")


def test_triton_kernels_match_the_reference_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "TRITON-OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreter is on")
def test_triton_on_a_cpu_tensor_without_the_interpreter_is_a_clear_error():
    a, b = torch.randn(1, 6), torch.randn(1, 4)
    with pytest.raises(ValueError, match="CUDA tensor, or TRITON_INTERPRET=1"):
        rational(torch.randn(2, 4), a, b, impl="triton")
