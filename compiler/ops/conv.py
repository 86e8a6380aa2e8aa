"""conv, avgpool, maxpool on images [c, h, w], with TF-style "same" padding.

The output is ceil(h / stride) x ceil(w / stride) whatever the kernel; the
padding needed, max((h' - 1) stride + k - h, 0), goes half before and the rest
(the odd one) after, on each spatial axis. :func:`same_out`, :func:`same_padding` and
:func:`pool_stride` are the geometry backends/torch/conv.py lowers with.
"""

from __future__ import annotations

from .registry import ArgSpec, OpCall, OpSpec, bias_params, need_rank, positive, register

X = ArgSpec("x", "tensor")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def same_out(size: int, stride: int) -> int:
    """Output length of a "same"-padded window along one axis."""
    return _ceil_div(size, stride)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of a "same" window along one axis: half, the odd one after."""
    total = max((same_out(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pool_stride(c: OpCall) -> int:
    """A pool's stride: ``stride``, or the window size ``k`` when not given."""
    return c.k if c.stride is None else c.stride


def _conv_shape(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (3,), "conv")
    _, h, w = c.x
    return (c.out, same_out(h, c.stride), same_out(w, c.stride))


def _conv_flops(c: OpCall) -> int:
    _, oh, ow = _conv_shape(c)
    return 2 * c.out * c.x[0] * c.kernel * c.kernel * oh * ow


register(OpSpec(
    "conv",
    (X,
     ArgSpec("out", "int", check=positive, doc="output channels"),
     ArgSpec("kernel", "int", check=positive, doc="square kernel size"),
     ArgSpec("stride", "int", 1, check=positive)),
    _conv_shape,
    params=lambda c: c.out * c.x[0] * c.kernel * c.kernel + bias_params(c, c.out),
    flops=_conv_flops,
    sparse_weights=lambda c: c.out * c.x[0] * c.kernel * c.kernel,
    parametric=True,
    doc="[c, h, w] -> [out, ceil(h/stride), ceil(w/stride)]: 2-d convolution, same padding",
))


def _pool(name: str) -> OpSpec:
    def shape(c: OpCall) -> tuple[int, ...]:
        need_rank(c.x, (3,), name)
        stride = pool_stride(c)
        ch, h, w = c.x
        return (ch, same_out(h, stride), same_out(w, stride))

    what = "average" if name == "avgpool" else "maximum"
    return OpSpec(
        name,
        (X,
         ArgSpec("k", "int", check=positive, doc="square window size"),
         ArgSpec("stride", "int", None, check=positive, doc="default: k")),
        shape,
        doc=f"[c, h, w] -> [c, ceil(h/stride), ceil(w/stride)]: {what} over k x k windows, "
            "same padding (padding excluded)",
    )


register(_pool("avgpool"))
register(_pool("maxpool"))
