"""Kernels on CPU: the rational unit's fast path, a KAN block against an MLP block, GLA.

Prints, in one run, forward + backward times and ratios:

1. rational unit, 512 x 256 (8 groups): compiled fast path vs the naive eager
   formula (autograd through it) -- goal >= 3x;
2. ``kan(x, d, basis = rational, hidden = 4d)`` vs ``mlp(x, hidden = 4d)`` on the same
   [batch, tokens, d] input, compiled by autoarch -- goal <= 2x on CPU;
3. causal gated linear attention: autoarch's chunked form vs the step-by-step
   recurrence; with a CUDA device also the Triton kernel vs both, on the GPU
   (nothing changes in the CPU output).
Run: ``python benchmarks/bench_kernels.py``. The first run compiles (tens of seconds).
"""

from __future__ import annotations

import statistics
import time

import torch

import autoarch
from autoarch.kernels import gla, rational

torch.manual_seed(0)


def timed(fn, repeats: int = 30, cuda: bool = False) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def fwd_bwd(f, *inputs):
    """Forward, then backward of a fixed upstream gradient into every input."""
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    grad = torch.randn_like(f(*leaves))

    def run():
        for leaf in leaves:
            leaf.grad = None
        f(*leaves).backward(grad)
    return run


def bench_rational() -> None:
    x, a, b = torch.randn(512, 256), torch.randn(8, 6) * 0.3, torch.randn(8, 4) * 0.3
    naive = timed(fwd_bwd(lambda *t: rational(*t, impl="torch"), x, a, b))
    fused = timed(fwd_bwd(lambda *t: rational(*t, impl="fused"), x, a, b))
    fast = timed(fwd_bwd(lambda *t: rational(*t, impl="compiled"), x, a, b))
    print(f"rational 512x256 fwd+bwd: naive eager {naive * 1e3:.2f} ms, fused eager "
          f"{fused * 1e3:.2f} ms, compiled {fast * 1e3:.2f} ms -> {naive / fast:.1f}x "
          f"({'meets' if naive / fast >= 3 else 'MISSES'} the >= 3x goal)")


def bench_kan_vs_mlp(d: int = 128, tokens: int = 64, batch: int = 32) -> None:
    times = {}
    for name, expr in (("mlp", f"mlp(x, hidden = {4 * d})"),
                       ("kan", f"kan(x, {d}, basis = rational, hidden = {4 * d})")):
        spec = autoarch.loads(f"model m(x: [{tokens}, {d}]) -> [{tokens}, {d}] {{\n"
                              f"  return {expr}\n}}\n", f"{name}.spec")
        model = autoarch.compile(spec, {}, seed=0)
        x = torch.randn(batch, tokens, d)
        times[name] = timed(fwd_bwd(model, x))
    ratio = times["kan"] / times["mlp"]
    print(f"block [{batch}, {tokens}, {d}] fwd+bwd: mlp {times['mlp'] * 1e3:.2f} ms, kan "
          f"(rational, hidden 4d) {times['kan'] * 1e3:.2f} ms -> {ratio:.2f}x "
          f"({'meets' if ratio <= 2 else 'MISSES'} the <= 2x goal)")


def bench_gla(n: int = 256) -> None:
    fq, fk = torch.rand(4, 4, n, 32) + 0.1, torch.rand(4, 4, n, 32) + 0.1
    v, g = torch.randn(4, 4, n, 32), -torch.rand(4, 4, n, 32) * 0.1
    chunked = timed(fwd_bwd(lambda *t: gla(*t, impl="chunked"), fq, fk, v, g), repeats=10)
    step = timed(fwd_bwd(lambda *t: gla(*t, impl="torch"), fq, fk, v, g), repeats=3)
    print(f"gla causal [4, 4, {n}, 32] fwd+bwd: recurrent {step * 1e3:.1f} ms, chunked "
          f"{chunked * 1e3:.1f} ms -> {step / chunked:.1f}x")


def bench_gla_triton(n: int = 2048, batch: int = 4, heads: int = 8, f: int = 64) -> None:
    """Triton kernel vs chunked torch vs recurrence on the GPU (fwd + bwd, fp32)."""
    dev = torch.device("cuda")
    fq = torch.rand(batch, heads, n, f, device=dev) + 0.1
    fk = torch.rand(batch, heads, n, f, device=dev) + 0.1
    v = torch.randn(batch, heads, n, f, device=dev)
    g = -torch.rand(batch, heads, n, f, device=dev) * 0.1
    times = {impl: timed(fwd_bwd(lambda *t, impl=impl: gla(*t, impl=impl), fq, fk, v, g),
                         repeats=reps, cuda=True)
             for impl, reps in (("triton", 20), ("chunked", 5), ("torch", 2))}
    print(f"gla causal [{batch}, {heads}, {n}, {f}] cuda fwd+bwd: recurrent "
          f"{times['torch'] * 1e3:.1f} ms, chunked {times['chunked'] * 1e3:.1f} ms, triton "
          f"{times['triton'] * 1e3:.2f} ms -> {times['chunked'] / times['triton']:.1f}x "
          f"chunked, {times['torch'] / times['triton']:.1f}x recurrent")


if __name__ == "__main__":
    bench_rational()
    bench_kan_vs_mlp()
    bench_gla()
    if torch.cuda.is_available():
        bench_gla_triton()
