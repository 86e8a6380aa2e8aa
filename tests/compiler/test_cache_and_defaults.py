"""Two compiler seams found by the export work: the op cache must not merge values
Python calls equal (2 and 2.0, 1 and true), and a decision in a def parameter's
default is a decision like any other (named, counted, built)."""

from __future__ import annotations

import autoarch

CHOICE = """model m(x: [4]) -> [4] {
  return x * choice(a: 2, b: 2.0)
}
"""


def test_an_int_and_an_equal_float_give_the_same_hash_whatever_was_built_before():
    first = autoarch.loads(CHOICE)
    (name,) = [d.name for d in first.space().decisions]
    after_a = (first.build({name: "a"}).hash, first.build({name: "b"}).hash)
    alone_b = autoarch.loads(CHOICE).build({name: "b"}).hash
    alone_a = autoarch.loads(CHOICE).build({name: "a"}).hash
    assert after_a == (alone_a, alone_b)  # the order of builds does not matter
    # and the recorded attribute keeps its type
    g = autoarch.loads(CHOICE).build({name: "b"})
    scales = [n["attrs"] for _, n in g.nx.nodes(data=True) if n["op"] not in ("input",
                                                                            "output")]
    assert any(isinstance(v, float) for a in scales for v in a.values())


DEFAULT = """def f(h, k = choice(1, 2)) {
  return h * k
}
model m(x: [4]) -> [4] {
  h = f(x)
  return f(h, k = 3) + f(h)
}
"""


def test_a_decision_in_a_def_default_is_one_decision_per_call_that_uses_it():
    spec = autoarch.loads(DEFAULT)
    space = spec.space()
    names = [d.name for d in space.decisions]
    assert len(names) == 2 and all(n.endswith(".k") for n in names)  # the k = 3 call: none
    assert space.count() == 4
    seen = set()
    for choices in space.enumerate():
        g = spec.build(choices)
        seen.add(g.hash)
    assert len(seen) == 4
