"""Randomly mutated specs give a result or a SpecError: never another exception, never a hang.

Each example takes one of the example specs, applies one to three mutations (delete
a span, duplicate a line, insert a token, swap two tokens, put an extreme value in
place of a number, truncate), then loads it, analyses its space, and samples and
builds two candidates.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoarch
from autoarch.compiler.checks import DECISION_CALLS
from autoarch.compiler.ops import public_names
from autoarch.compiler.settings import SYMBOL_CALLS
from autoarch.dsl.parser import KEYWORDS

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.spec"))
SOURCES = [p.read_text() for p in EXAMPLES]

#: numbers at the edges: zero, negative, huge, overflowing, fractional
EXTREMES = ("0", "-1", "1e9", "1e400", "0.5", "1000000000", "1e-400", "-0.5", "1G", "2.5",
            "99999999999999999999", "10000", "10001", "1e12", ".5", "0.0")
VOCAB = (KEYWORDS + tuple(public_names()) + DECISION_CALLS + SYMBOL_CALLS + EXTREMES
         + ("(", ")", "[", "]", "{", "}", ",", "=", ":", "->", "+", "-", "*", "/", "//", "%",
            "**", "==", "<", ">=", "x", "h", "i", "width", "gelu", "kaiming", "nm(2, 4)",
            '"s"', '"', "#", "\n", ".", "__import__", "true", "false", "1", "2", "3", "100k",
            "step =", "log = true", "\t", "\r"))

#: a rough tokenizer, good enough to pick tokens to swap or numbers to replace
TOKEN = re.compile(r'\s+|[A-Za-z_][A-Za-z0-9_]*|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[kMG]?'
                   r'|"(?:[^"\\\n]|\\.)*"|//|\*\*|->|[=!<>]=|.', re.S)
NUMBER = re.compile(r"[\d.]")


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("delete", "duplicate", "insert", "swap", "extreme",
                                     "truncate")))
        tokens = TOKEN.findall(text)
        if kind == "delete" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + draw(st.integers(1, 40)):]
        elif kind == "duplicate":
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == "insert":
            i = draw(st.integers(0, len(tokens)))
            tokens.insert(i, " " + draw(st.sampled_from(VOCAB)) + " ")
            text = "".join(tokens)
        elif kind == "swap" and len(tokens) > 1:
            i, j = draw(st.integers(0, len(tokens) - 1)), draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
            text = "".join(tokens)
        elif kind == "extreme":
            numbers = [k for k, t in enumerate(tokens) if NUMBER.match(t)]
            if numbers:
                tokens[draw(st.sampled_from(numbers))] = draw(st.sampled_from(EXTREMES))
                text = "".join(tokens)
        elif kind == "truncate" and text:
            text = text[:draw(st.integers(0, len(text) - 1))]
    return text


def exercise(text: str) -> None:
    """Everything a user does with a spec: load, count, sample, build."""
    spec = autoarch.loads(text, "fuzz.spec")
    space = spec.space()
    space.count()
    for seed in (0, 1):
        spec.build(space.sample(seed))


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_specs_succeed_or_raise_spec_error(text: str) -> None:
    start = time.perf_counter()
    try:
        exercise(text)
    except autoarch.SpecError as e:
        shown = e.format()  # formatting an error never fails either
        assert shown.splitlines()[0].startswith("fuzz.spec:") or e.span is None, shown
        if e.span is not None:
            # lines as the parser documents them: \r\n and a lone \r end a line too
            lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
            assert 1 <= e.span.line <= lines, shown
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"took {elapsed:.1f} s"


def test_every_example_passes_unmutated() -> None:
    for text in SOURCES:
        exercise(text)
