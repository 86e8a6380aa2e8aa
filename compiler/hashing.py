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
    """Weisfeiler-Lehman rounds from starting labels (fixed-size digests)."""
    n = len(labels)
    preds: list[list[bytes]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    pred_ids: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for u, v, pos in edges:
        pred_ids[v].append((0 if _commutative(op_names[v]) else pos, u))
        succs[u].append(v)
    seen = list(labels)
    for _ in range(rounds):
        for i in range(n):
            preds[i] = sorted(bytes((p,)) + labels[u] for p, u in pred_ids[i])
        labels = [
            _digest(b"".join((labels[i], b"<", *preds[i], b">",
                              *sorted(labels[v] for v in succs[i]))))
            for i in range(n)
        ]
        seen.extend(labels)
    return hashlib.blake2b(b"".join(sorted(seen)), digest_size=12).hexdigest()


@functools.cache
def _commutative(op: str) -> bool:
    return ops.get(op).commutative
