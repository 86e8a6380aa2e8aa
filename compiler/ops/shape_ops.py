"""Ops that only move data: reshape, flatten, patchify, mean, concat.

Lowered by backends/torch/shape_ops.py.
"""

from __future__ import annotations

import math

from .registry import ArgSpec, OpCall, OpError, OpSpec, need_rank, positive, register

X = ArgSpec("x", "tensor")


def _reshape(c: OpCall) -> tuple[int, ...]:
    dims = list(c.shape)
    total = math.prod(c.x)
    if not dims:
        raise OpError("reshape needs at least one dimension", arg="shape")
    if dims.count(-1) > 1:
        raise OpError("reshape takes at most one -1", arg="shape")
    if any(d == 0 or d < -1 for d in dims):
        raise OpError(f"reshape dimensions must be positive (or one -1), got {dims}",
                      arg="shape", kind="value")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if total % known:
            raise OpError(f"cannot reshape {list(c.x)} ({total} elements) into {dims}",
                          arg="shape")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total:
        raise OpError(
            f"cannot reshape {list(c.x)} ({total} elements) into {dims} "
            f"({math.prod(dims)} elements)", arg="shape")
    return tuple(dims)


def _patchify(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (3,), "patchify")
    ch, h, w = c.x
    if h % c.size or w % c.size:
        raise OpError(f"patch size {c.size} does not divide the image {h}x{w}", arg="size")
    return (h * w // c.size**2, ch * c.size**2)


def _axis(c: OpCall, rank: int) -> int:
    axis = c.axis + rank if c.axis < 0 else c.axis
    if not 0 <= axis < rank:
        raise OpError(f"axis {c.axis} is out of range for shape of rank {rank}", arg="axis")
    return axis


def _mean(c: OpCall) -> tuple[int, ...]:
    if len(c.x) < 2:
        raise OpError(f"mean would leave no feature axis of shape {list(c.x)}")
    axis = _axis(c, len(c.x))
    return c.x[:axis] + c.x[axis + 1:]


def _concat(c: OpCall) -> tuple[int, ...]:
    a, b = c.a, c.b
    if len(a) != len(b):
        raise OpError(f"concat of shapes of different rank {list(a)} and {list(b)}")
    axis = _axis(c, len(a))
    if a[:axis] + a[axis + 1:] != b[:axis] + b[axis + 1:]:
        raise OpError(f"concat along axis {c.axis} needs the other axes equal, "
                      f"got {list(a)} and {list(b)}")
    return a[:axis] + (a[axis] + b[axis],) + a[axis + 1:]


register(OpSpec("reshape", (X, ArgSpec("shape", "ints")), _reshape,
                doc="reshape the features (one -1 allowed)"))
register(OpSpec("flatten", (X,), lambda c: (math.prod(c.x),), doc="[...] -> [prod]"))
register(OpSpec("patchify", (X, ArgSpec("size", "int", check=positive)), _patchify,
                doc="[c, h, w] -> [h*w/size^2, c*size^2]"))
register(OpSpec("mean", (X, ArgSpec("axis", "int", 0)), _mean,
                doc="average over an axis (counted from the first non-batch axis)"))
register(OpSpec("concat", (ArgSpec("a", "tensor"), ArgSpec("b", "tensor"),
                           ArgSpec("axis", "int", -1)), _concat,
                doc="join two tensors along an axis"))


