"""Lowering of user ops (rules in compiler/ops/user.py): the user's class, built with the
node's arguments and called through ``Emitter.module``, so that ``init``,
``sparsity`` and ``frozen`` apply to it as to a built-in block."""

from __future__ import annotations

from typing import Any

import torch.fx as fx

from ...compiler.ops import user
from .lower import Emitter, LoweringError, op_call


def _lower(em: Emitter, n: dict[str, Any], xs: list[fx.Node]) -> fx.Node:
    d = user.definition(n["op"])
    try:
        mod = d.build(op_call(n))
    except Exception as e:  # the rules built it on meta already: a device-specific failure
        raise LoweringError(f"building {d.cls.__qualname__} for op '{d.name}' failed: "
                            f"{type(e).__name__}: {e}", n["span"]) from None
    # Emitter.module applies init / sparsity / frozen from the attributes: only those
    # that are autoarch's, not an argument of the op's own that has the same name
    common = {a.name for a in d.common}
    node = em.node
    em.node = {**node, "attrs": {k: v for k, v in node["attrs"].items() if k in common}}
    try:
        return em.module(mod, *xs)
    finally:
        em.node = node


user.set_lowering(_lower)
