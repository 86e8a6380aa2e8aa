"""Canonical hash of a candidate graph: Weisfeiler-Lehman over op, attributes and shapes.

Each node starts from a label of its op, attributes and output shape; each round
relabels a node from its own label, its inputs' labels in argument order (order
ignored for commutative ops such as `add`) and its consumers' labels. The hash is
a digest of the multiset of all labels of all rounds, so isomorphic candidates
share it and node numbering never matters.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import ops
from .values import to_json

ROUNDS = 4


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def node_label(node: dict[str, Any]) -> str:
    attrs = {k: to_json(v) for k, v in node["attrs"].items()}
    return json.dumps([node["op"], attrs, list(node["shape"])], sort_keys=True, default=str)


def wl_hash(nodes: list[dict[str, Any]], edges: list[tuple[int, int, int]],
            rounds: int = ROUNDS) -> str:
    n = len(nodes)
    commutative = [ops.get(nd["op"]).commutative for nd in nodes]
    preds: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, v, pos in edges:
        preds[v].append((0 if commutative[v] else pos, u))
        succs[u].append(v)
    labels = [_digest(node_label(nd)) for nd in nodes]
    seen = list(labels)
    for _ in range(rounds):
        labels = [
            _digest(labels[i] + "<" + ",".join(sorted(f"{p}:{labels[u]}" for p, u in preds[i]))
                    + ">" + ",".join(sorted(labels[v] for v in succs[i])))
            for i in range(n)
        ]
        seen.extend(labels)
    return _digest("|".join(sorted(seen)))
