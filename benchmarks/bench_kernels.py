"""Kernels: the rational unit and its KAN block against an MLP block, and GLA.

Prints, in one run, forward + backward times and ratios to a baseline measured in the
same run.

CPU (``--device cpu``, the default):

1. **training sizes**: a rational KAN block against an MLP block at the sizes a
   search trains with -- digits (batch 64 of 8 tokens, width 32), recall (batch 64
   of 9 tokens, width 64) and a KAT block (batch 16 of 64 patches, width 96) --
   both as lowered by autoarch. ``kan(x, d, basis = rational)`` (one layer,
   the quickstart's) is set against ``mlp(x, expand = 2)``, and KAT's two-layer
   ``kan(x, d, basis = rational, hidden = 2d)`` against ``mlp(x, hidden = 2d)``
   (same matmuls; two rational units against one GELU). Goal: <= 1.5x. The KAN
   block runs what ``impl="auto"`` takes on a CPU (the C kernel, built once per
   machine) and again with the fused eager form (what runs without a C compiler).
   The runs take turns in rounds, and each figure is the median of the rounds.
2. **the unit alone**: the C kernel, the fused eager form and the ``torch.compile``
   form against autograd through the formula, at two training sizes and a large one.
3. **GLA**: the chunked form against the step-by-step recurrence.

CUDA (``--device cuda``): first **correctness on the device** -- the Triton rational
unit (fp32, fp16, bf16, odd widths and group counts; values and every gradient)
and the Triton GLA kernel against the float64 torch references -- and only if
every check passes, the timings: Triton against the torch forms, the KAN block
against the MLP block on the GPU, and GLA Triton against chunked and recurrent.

Run: ``python benchmarks/bench_kernels.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time

import torch

import autoarch
from autoarch.kernels import cpu as kernel_cpu
from autoarch.kernels import gla, rational

rational_module = importlib.import_module("autoarch.kernels.rational")  # not the function

torch.manual_seed(0)

#: (name, batch, tokens, width) a search trains with
TRAINING_SIZES = (("digits", 64, 8, 32), ("recall", 64, 9, 64), ("kat", 16, 64, 96))


def timed(fn, repeats: int = 30, cuda: bool = False) -> float:
    """Median seconds of ``fn()`` after three warm-up calls."""
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


def interleaved(runs: dict, repeats: int, cuda: bool = False, rounds: int = 7) -> dict:
    """Median seconds of each run, the runs taking turns (``rounds`` times ``repeats //
    rounds`` calls each), so that a shared machine's slow spells fall on all of them."""
    samples: dict = {name: [] for name in runs}
    for fn in runs.values():
        timed(fn, 1, cuda)
    for _ in range(rounds):
        for name, fn in runs.items():
            samples[name].append(timed(fn, max(repeats // rounds, 3), cuda))
    return {name: statistics.median(v) for name, v in samples.items()}


def fwd_bwd(f, *inputs):
    """Forward, then backward of a fixed upstream gradient into every input."""
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    grad = torch.randn_like(f(*leaves))

    def run():
        for leaf in leaves:
            leaf.grad = None
        f(*leaves).backward(grad)
    return run


def block(expr: str, tokens: int, d: int, device: str) -> torch.nn.Module:
    """One block as autoarch lowers it (``x`` is ``[tokens, d]``)."""
    spec = autoarch.loads(f"model m(x: [{tokens}, {d}]) -> [{tokens}, {d}] {{\n"
                          f"  return {expr}\n}}\n", "block.spec")
    return autoarch.compile(spec, {}, seed=0).to(device)


def verdict(ratio: float, goal: float) -> str:
    return "meets" if ratio <= goal else "MISSES"


def eager_rational(fn):
    """``fn`` with ``impl="auto"`` on a CPU taking the eager fused form, as where no C
    compiler is."""
    def run():
        saved = rational_module._c_kernels
        rational_module._c_kernels = lambda: None
        try:
            fn()
        finally:
            rational_module._c_kernels = saved
    return run


def bench_blocks(device: str = "cpu", repeats: int = 50) -> None:
    cuda = device == "cuda"
    c_kernel = device == "cpu" and rational_module._c_kernels() is not None
    print(f"KAN block vs MLP block, forward + backward on {device} (goal <= 1.5x)"
          + ("; kan: the C kernel (what runs), eager: the fused eager form" if c_kernel else ""))
    if device == "cpu" and not c_kernel:
        print(f"  (no C kernel: {kernel_cpu.why_not('rational_cpu')})")
    for name, batch, tokens, d in TRAINING_SIZES:
        x = torch.randn(batch, tokens, d, device=device)
        pairs = (("kan 1 layer / mlp expand 2", f"kan(x, {d}, basis = rational)",
                  "mlp(x, expand = 2)"),
                 (f"kan hidden {2 * d} / mlp hidden {2 * d}",
                  f"kan(x, {d}, basis = rational, hidden = {2 * d})", f"mlp(x, hidden = {2 * d})"))
        for label, kan, mlp in pairs:
            runs = {"mlp": fwd_bwd(block(mlp, tokens, d, device), x),
                    "kan": fwd_bwd(block(kan, tokens, d, device), x)}
            if c_kernel:
                runs["eager"] = eager_rational(fwd_bwd(block(kan, tokens, d, device), x))
            t = interleaved(runs, repeats, cuda)
            r = t["kan"] / t["mlp"]
            line = (f"  {name:6} [{batch}, {tokens}, {d}] {label:30} mlp {t['mlp'] * 1e3:7.3f} ms  "
                    f"kan {t['kan'] * 1e3:7.3f} ms  {r:5.2f}x ({verdict(r, 1.5)})")
            if c_kernel:
                line += f"  eager {t['eager'] * 1e3:7.3f} ms {t['eager'] / t['mlp']:5.2f}x"
            print(line)


def bench_rational_cpu() -> None:
    print("rational unit alone, forward + backward on cpu (8 groups)")
    impls = ["torch", "fused", "compiled"]
    if rational_module._c_kernels() is not None:
        impls.insert(1, "cpu")
    for rows, d in ((512, 32), (512, 256), (16384, 256)):
        x, a, b = torch.randn(rows, d), torch.randn(8, 6) * 0.3, torch.randn(8, 4) * 0.3
        t = interleaved({impl: fwd_bwd(lambda *u, impl=impl: rational(*u, impl=impl), x, a, b)
                         for impl in impls}, 50)
        print(f"  [{rows}, {d}]: autograd through the formula {t['torch'] * 1e3:.3f} ms, "
              + ", ".join(f"{impl} {t[impl] * 1e3:.3f} ms ({t['torch'] / t[impl]:.1f}x)"
                          for impl in impls[1:]))


def gla_inputs(batch: int, heads: int, n: int, f: int, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    kw = {"device": device, "dtype": dtype}
    return (torch.rand(batch, heads, n, f, **kw) + 0.1, torch.rand(batch, heads, n, f, **kw) + 0.1,
            torch.randn(batch, heads, n, f, **kw), -torch.rand(batch, heads, n, f, **kw) * 0.1)


def bench_gla_cpu(n: int = 256) -> None:
    inputs = gla_inputs(4, 4, n, 32)
    chunked = timed(fwd_bwd(lambda *t: gla(*t, impl="chunked"), *inputs), repeats=10)
    step = timed(fwd_bwd(lambda *t: gla(*t, impl="torch"), *inputs), repeats=3)
    print(f"gla causal [4, 4, {n}, 32] fwd+bwd on cpu: recurrent {step * 1e3:.1f} ms, chunked "
          f"{chunked * 1e3:.1f} ms -> {step / chunked:.1f}x")


# ---- CUDA ---------------------------------------------------------------------------


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()


def check_rational_cuda() -> list[str]:
    """Triton rational vs the float64 torch reference on the device; returns failures."""
    failures = []
    tolerance = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}
    for shape, g in (((64, 8, 32), 8), ((7, 15), 3), ((33, 96), 4), ((5, 64), 64),
                     ((1000, 17), 1)):
        for dtype, tol in tolerance.items():
            x = (torch.randn(shape, device="cuda") * 2).to(dtype).requires_grad_(True)
            a = (torch.randn(g, 6, device="cuda") * 0.5).requires_grad_(True)
            b = (torch.randn(g, 4, device="cuda") * 0.5).requires_grad_(True)
            w = torch.randn(shape, device="cuda", dtype=torch.float64)
            y = rational(x, a, b, impl="triton")
            (y.double() * w).sum().backward()
            ref_in = [t.detach().double().requires_grad_(True) for t in (x, a, b)]
            ref = rational(*ref_in, impl="torch")
            (ref * w).sum().backward()
            for what, got, want in (("F", y, ref), ("dx", x.grad, ref_in[0].grad),
                                    ("da", a.grad, ref_in[1].grad),
                                    ("db", b.grad, ref_in[2].grad)):
                err = relative_error(got, want)
                if not err < tol:
                    failures.append(f"rational {shape} g={g} {dtype} {what}: relative error "
                                    f"{err:.2e} > {tol:.0e}")
    return failures


def check_gla_cuda() -> list[str]:
    failures = []
    for dtype, tol in ((torch.float32, 1e-3), (torch.bfloat16, 5e-2)):
        for n in (17, 64, 200):
            inputs = [t.to(dtype).requires_grad_(True) for t in gla_inputs(2, 3, n, 16, "cuda")]
            w = torch.randn(2, 3, n, 16, device="cuda", dtype=torch.float64)
            (gla(*inputs, impl="triton").double() * w).sum().backward()
            ref_in = [t.detach().double().requires_grad_(True) for t in inputs]
            ref = gla(*ref_in, impl="torch")
            (ref * w).sum().backward()
            got = [gla(*[t.detach() for t in inputs], impl="triton")] + [t.grad for t in inputs]
            want = [ref.detach()] + [t.grad for t in ref_in]
            for what, u, v in zip(("out", "dq", "dk", "dv", "dlog_gates"), got, want, strict=True):
                err = relative_error(u, v)
                if not err < tol:
                    failures.append(f"gla n={n} {dtype} {what}: relative error {err:.2e} > "
                                    f"{tol:.0e}")
    return failures


def bench_rational_cuda() -> None:
    print("rational unit alone, forward + backward on cuda (8 groups)")
    for rows, d in ((512, 32), (4096, 256), (65536, 768)):
        x, a, b = (torch.randn(rows, d, device="cuda"), torch.randn(8, 6, device="cuda") * 0.3,
                   torch.randn(8, 4, device="cuda") * 0.3)
        t = {impl: timed(fwd_bwd(lambda *u, impl=impl: rational(*u, impl=impl), x, a, b), 30,
                         cuda=True) for impl in ("torch", "fused", "triton")}
        print(f"  [{rows}, {d}]: torch formula {t['torch'] * 1e3:.3f} ms, fused "
              f"{t['fused'] * 1e3:.3f} ms, triton {t['triton'] * 1e3:.3f} ms -> "
              f"{t['torch'] / t['triton']:.1f}x the formula, {t['fused'] / t['triton']:.1f}x fused")


def bench_gla_cuda(n: int = 2048, batch: int = 4, heads: int = 8, f: int = 64) -> None:
    inputs = gla_inputs(batch, heads, n, f, "cuda")
    times = {impl: timed(fwd_bwd(lambda *t, impl=impl: gla(*t, impl=impl), *inputs),
                         repeats=reps, cuda=True)
             for impl, reps in (("triton", 20), ("chunked", 5), ("torch", 2))}
    print(f"gla causal [{batch}, {heads}, {n}, {f}] fwd+bwd on cuda: recurrent "
          f"{times['torch'] * 1e3:.1f} ms, chunked {times['chunked'] * 1e3:.1f} ms, triton "
          f"{times['triton'] * 1e3:.2f} ms -> {times['chunked'] / times['triton']:.1f}x "
          f"chunked, {times['torch'] / times['triton']:.1f}x recurrent")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(max(torch.get_num_threads(), 1))
        bench_blocks("cpu")
        bench_rational_cpu()
        bench_gla_cpu()
        return
    if not torch.cuda.is_available():
        sys.exit("bench_kernels: --device cuda needs a CUDA GPU and a CUDA build of torch; "
                 "none is visible here (run without --device for the CPU figures)")
    print(f"device: {torch.cuda.get_device_name()}")
    failures = check_rational_cuda() + check_gla_cuda()
    if failures:
        sys.exit("correctness on the device FAILED, no timings:\n  " + "\n  ".join(failures))
    print("correctness on the device: Triton rational (fp32/fp16/bf16, odd widths and groups) "
          "and Triton GLA match the float64 torch references")
    bench_rational_cuda()
    bench_blocks("cuda", repeats=100)
    bench_gla_cuda()


if __name__ == "__main__":
    main()
