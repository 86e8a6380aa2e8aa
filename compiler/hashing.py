"""Canonical hash of a candidate graph: Weisfeiler-Lehman over op, attributes and shapes.

Each node starts from a label of its op, attributes and output shape; each round
relabels a node from its own label, its inputs' labels in argument order (order
ignored for commutative ops such as `add`) and its consumers' labels. The hash is
a digest of the multiset of all labels of all rounds, so isomorphic candidates
share it and node numbering never matters.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from . import ops
from .values import to_json

ROUNDS = 4
_SIZE = 10  # bytes of each label: fixed size, so joined labels never run together


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_SIZE).digest()


def node_label(op: str, attrs: dict[str, Any], shape: tuple[int, ...]) -> bytes:
    """The starting label of a node: a digest of its op, attributes and output shape."""
    text = json.dumps([op, {k: to_json(v) for k, v in attrs.items()}, list(shape)],
                      sort_keys=True, default=str)
    return _digest(text.encode())


def wl_hash(nodes: list[dict[str, Any]], edges: list[tuple[int, int, int]],
            rounds: int = ROUNDS) -> str:
    """The hash of a graph given as node attribute dicts and (src, dst, pos) edges."""
    labels = [node_label(nd["op"], nd["attrs"], nd["shape"]) for nd in nodes]
    return hash_labels(labels, [nd["op"] for nd in nodes], edges, rounds)


def hash_labels(labels: list[bytes], op_names: list[str], edges: list[tuple[int, int, int]],
                rounds: int = ROUNDS) -> str:
    """Weisfeiler-Lehman rounds from starting labels (fixed-size digests).

    A node's new label digests its label, ``<``, its inputs' labels each after its
    argument position (one byte, 0 for a commutative op), sorted, ``>``, and its
    consumers' labels, sorted. (Run once per proposal in a search: one join and one
    digest per node and round, no sort of a single item.)
    """
    n = len(labels)
    ins: list[list[tuple[bytes, int]]] = [[] for _ in range(n)]
    outs: list[list[int]] = [[] for _ in range(n)]
    for u, v, pos in edges:
        ins[v].append((bytes((0 if _commutative(op_names[v]) else pos,)), u))
        outs[u].append(v)
    blake2b = hashlib.blake2b
    seen = list(labels)
    for _ in range(rounds):
        new = []
        for i in range(n):
            parts = [labels[i], b"<"]
            into, out = ins[i], outs[i]
            if len(into) == 1:
                parts.append(into[0][0] + labels[into[0][1]])
            elif into:
                parts.extend(sorted([p + labels[u] for p, u in into]))
            parts.append(b">")
            if len(out) == 1:
                parts.append(labels[out[0]])
            elif out:
                parts.extend(sorted([labels[v] for v in out]))
            new.append(blake2b(b"".join(parts), digest_size=_SIZE).digest())
        labels = new
        seen.extend(labels)
    return hashlib.blake2b(b"".join(sorted(seen)), digest_size=12).hexdigest()


@functools.cache
def _commutative(op: str) -> bool:
    return ops.get(op).commutative
