"""Bad input gets a clear error, fast: never a traceback, never a hang.

Every user mistake is a :class:`autoarch.SpecError` (or a subclass) that names
``file:line:col``, shows the line with a caret, and says what was expected.
Mistakes in the spec itself surface from ``autoarch.loads`` or from
``spec.space()`` (space analysis); mistakes that only show in a particular
candidate (shapes, ``require``) from ``spec.build(choices)`` as CandidateErrors.

The expected locations and phrases below are written from the specs by hand;
the golden texts pin the full wording of the most common mistakes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from textwrap import dedent

import pytest

import autoarch
from autoarch import (
    CandidateError,
    RequireError,
    ShapeError,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecSyntaxError,
    SpecTypeError,
    SpecValueError,
)
from autoarch.compiler import limits
from autoarch.dsl import parser

FILE = "f.spec"


def model(body: str, *, head: str = "model m(x: [16]) -> [10] {", before: str = "",
          after: str = "") -> str:
    """A spec: ``before``, then a model whose body is ``body`` (dedented), then ``after``."""
    lines = dedent(body).strip("\n").splitlines()
    text = "\n".join([head] + ["  " + ln for ln in lines] + ["}"]) + "\n"
    return dedent(before).lstrip("\n") + text + dedent(after).lstrip("\n")


def error_at(stage: str, text: str, choices: dict | None = None) -> SpecError:
    """The SpecError ``text`` raises at ``stage`` (load, space or build); earlier stages pass."""
    if stage == "load":
        with pytest.raises(SpecError) as e:
            autoarch.loads(text, FILE)
        return e.value
    spec = autoarch.loads(text, FILE)
    if stage == "space":
        with pytest.raises(SpecError) as e:
            spec.space()
        return e.value
    assert stage == "build"
    spec.space()
    with pytest.raises(SpecError) as e:
        spec.build(choices or {})
    return e.value


def assert_located(err: SpecError, text: str, line: int, col: int) -> None:
    """The error names file:line:col, and shows that source line with a caret under col."""
    assert (err.filename, err.line, err.column) == (FILE, line, col), err.format()
    out = err.format().splitlines()
    assert out[0].startswith(f"{FILE}:{line}:{col}: error: ")
    assert out[1] == f"{line:>5} | " + text.splitlines()[line - 1].expandtabs(1)
    assert out[2].index("^") == out[1].index("|") + 2 + col - 1


# (stage, spec, class, line, column, phrase in the message, phrase in the hint)
CASES = {
    # ---- syntax ------------------------------------------------------------------
    "missing-comma": (
        "load", model("h = linear(x 10)\nreturn h"),
        SpecSyntaxError, 2, 16, "unexpected '10'", "a ',' is missing before '10'"),
    "unterminated-string": (
        "load", model('require true, "abc\nreturn linear(x, 10)'),
        SpecSyntaxError, 2, 17, "unterminated string", 'close the string with "'),
    "unclosed-paren": (
        "load", model("h = linear(x, 10\nreturn h"),
        SpecSyntaxError, 3, 3, "unexpected 'return'", "the '(' at line 2, column 13 is not closed"),
    "unclosed-brace-at-end-of-file": (
        "load", "model m(x: [16]) -> [10] {\n  return linear(x, 10)\n",
        SpecSyntaxError, 2, 23, "unexpected end of file", "the '{' at line 1, column 26"),
    "unclosed-bracket": (
        "load", model("h = reshape(x, [4, 4)\nreturn linear(flatten(h), 10)"),
        SpecSyntaxError, 2, 23, "unexpected ')'", "the '[' at line 2, column 18 is not closed"),
    "stray-closer": (
        "load", model("h = linear(x, 10))\nreturn h"),
        SpecSyntaxError, 2, 20, "unexpected ')'", "this ')' closes nothing"),
    "misspelled-statement-keyword": (
        "load", model("reapet 3 { x = relu(x) }\nreturn linear(x, 10)"),
        SpecSyntaxError, 2, 3, "unknown keyword 'reapet'", "did you mean 'repeat'?"),
    "misspelled-return": (
        "load", model("retrun linear(x, 10)"),
        SpecSyntaxError, 2, 3, "unknown keyword 'retrun'", "did you mean 'return'?"),
    "misspelled-item-keyword": (
        "load", "modle m(x: [16]) -> [10] {\n  return linear(x, 10)\n}\n",
        SpecSyntaxError, 1, 1, "unknown keyword 'modle'", "did you mean 'model'?"),
    "bad-character": (
        "load", model("h = linear(x, 10) $\nreturn h"),
        SpecSyntaxError, 2, 21, "unexpected character '$'", "an operator"),
    "number-out-of-range": (
        "load", model("return linear(x, 1e400)"),
        SpecSyntaxError, 2, 20, "number 1e400 is out of range", None),
    "unknown-escape": (
        "load", model('require true, "a\\nb"\nreturn linear(x, 10)'),
        SpecSyntaxError, 2, 19, "unknown escape '\\n'", 'only \\" and \\\\'),
    # ---- unknown ops, keywords, symbols and names ---------------------------------
    "unknown-op": (
        "load", model("h = lineer(x, 10)\nreturn h"),
        SpecNameError, 2, 7, "unknown op 'lineer'", "did you mean 'linear'?"),
    "unknown-act": (
        "space", model("return linear(act(x, gelo), 10)"),
        SpecNameError, 2, 24, "unknown kind 'gelo' for act()", "did you mean 'gelu'?"),
    "unknown-basis": (
        "space", model("return linear(kan(x, 16, basis = splin), 10)"),
        SpecNameError, 2, 36, "unknown basis 'splin' for kan()", "did you mean 'bspline'?"),
    "unknown-attention-kind": (
        "space", model("return attention(x, 2, kind = sofmax)",
                       head="model m(x: [4, 16]) -> [4, 16] {"),
        SpecNameError, 2, 33, "unknown kind 'sofmax' for attention()", "'softmax'"),
    "unknown-name": (
        "space", model("let width = 32\nreturn linear(linear(x, widht), 10)"),
        SpecNameError, 3, 27, "unknown name 'widht'", "did you mean 'width'?"),
    "unknown-keyword-argument": (
        "space", model("return linear(x, 10, bais = false)"),
        SpecNameError, 2, 24, "linear() has no argument 'bais'", "did you mean 'bias'?"),
    "unknown-with-name": (
        "space", model("with inti = kaiming { h = linear(x, 10) }\nreturn h"),
        SpecNameError, 2, 8, "no op takes an argument 'inti'", "did you mean 'init'?"),
    "with-value-no-op-takes": (
        "space", model("with act = 3 { h = mlp(x, hidden = 8, out = 10) }\nreturn h"),
        SpecNameError, 2, 14, "`with act` suits no op", "gelu"),
    "unknown-init": (
        "space", model("return linear(x, 10, init = kaimnig)"),
        SpecNameError, 2, 31, "unknown init 'kaimnig'", "did you mean 'kaiming'?"),
    "unknown-sparsity": (
        "space", model("return linear(x, 10, sparsity = dense)"),
        SpecNameError, 2, 35, "unknown sparsity 'dense'", "nm(n, m)"),
    "unknown-train-setting": (
        "load", model("return linear(x, 10)", after="train { epoch = 3 }"),
        SpecNameError, 4, 9, "unknown train setting 'epoch'", "did you mean 'epochs'?"),
    "unknown-search-setting": (
        "load", model("return linear(x, 10)", after="search { stratgy = tpe }"),
        SpecNameError, 4, 10, "unknown search setting 'stratgy'", "did you mean 'strategy'?"),
    "unknown-optimizer": (
        "space", model("return linear(x, 10)", after="train { optimizer = adamx }"),
        SpecNameError, 4, 21, "unknown optimizer 'adamx'", "did you mean 'adam' or 'adamw'?"),
    "unknown-optimizer-setting": (
        "space", model("return linear(x, 10)",
                       after="train { optimizer = adamw(learning_rate = 1e-3) }"),
        SpecNameError, 4, 21, "adamw() has no setting 'learning_rate'", "lr"),
    "unknown-strategy": (
        "space", model("return linear(x, 10)", after="search { strategy = mtcs }"),
        SpecNameError, 4, 21, "unknown strategy 'mtcs'", "did you mean 'mcts'?"),
    "unknown-metric": (
        "space", model("return linear(x, 10)",
                       after="search { objective = maximize(val_acc) }"),
        SpecNameError, 4, 22, "unknown metric 'val_acc'", "did you mean 'val_accuracy'?"),
    "unknown-constraint-name": (
        "load", model("return linear(x, 10)", after="search { constraint parms <= 100k }"),
        SpecNameError, 4, 21, "unknown name 'parms' in a constraint", "did you mean 'params'?"),
    # ---- argument types and counts --------------------------------------------------
    "missing-argument": (
        "space", model("return linear(x)"),
        SpecTypeError, 2, 10, "linear() is missing argument 'out'", "x, out"),
    "wrong-argument-type": (
        "space", model('return linear(x, "ten")'),
        SpecTypeError, 2, 20, "argument 'out' of linear() must be an integer, got string", None),
    "tensor-expected": (
        "space", model("return linear(relu(3), 10)"),
        SpecTypeError, 2, 22, "argument 'x' of relu() must be a tensor, got int", None),
    "too-many-positional": (
        "space", model("return linear(relu(x, 3), 10)"),
        SpecTypeError, 2, 25, "relu() takes at most 1 positional argument", None),
    "argument-given-twice": (
        "space", model("return linear(x, 10, out = 3)"),
        SpecTypeError, 2, 24, "argument 'out' of linear() given twice", None),
    "def-missing-argument": (
        "load", model("return f(x)", before="def f(x, k) = linear(x, k)\n"),
        SpecTypeError, 3, 10, "f() is missing argument 'k'", "def f(x, k) is at line 1"),
    "def-too-many-arguments": (
        "load", model("return f(x, 10, 3)", before="def f(x, k) = linear(x, k)\n"),
        SpecTypeError, 3, 19, "f() takes 2 argument(s), got 3", "def f(x, k)"),
    "def-unknown-parameter": (
        "load", model("return f(x, k = 10, kk = 2)", before="def f(x, k) = linear(x, k)\n"),
        SpecNameError, 3, 23, "f() has no parameter 'kk'", "did you mean 'k'?"),
    "def-not-called": (
        "space", model("h = f\nreturn linear(h, 10)", before="def f(x) = relu(x)\n"),
        SpecTypeError, 3, 7, "def 'f' must be called", None),
    "label-outside-choice": (
        "load", model("return linear(x, 10, a: 3)"),
        SpecTypeError, 2, 24, "labelled arguments (name: value) are only for choice()", None),
    "labels-on-some-alternatives": (
        "load", model("return linear(x, choice(a: 10, 12))"),
        SpecTypeError, 2, 20, "label all alternatives of a choice() or none", None),
    "keyword-in-choice": (
        "load", model("return linear(x, choice(a = 10))"),
        SpecTypeError, 2, 27, "not keyword arguments", "write `a: ...`"),
    "int-bounds-not-constant": (
        "space", model("return linear(linear(x, int(lo, 20)), 10)",
                       before="let lo = choice(1, 2)\n"),
        SpecValueError, 3, 31, "the arguments of int() must be constants", None),
    "int-bounds-not-integers": (
        "space", model("return linear(linear(x, int(1.5, 20)), 10)"),
        SpecTypeError, 2, 31, "int() bounds must be integers, got 1.5", None),
    "int-one-bound": (
        "load", model("return linear(linear(x, int(20)), 10)"),
        SpecTypeError, 2, 27, "int() takes two bounds", None),
    "int-unknown-keyword": (
        "load", model("return linear(linear(x, int(1, 20, stride = 2)), 10)"),
        SpecNameError, 2, 38, "int() has no argument 'stride'", "did you mean 'step'?"),
    "optional-of-a-name": (
        "load", model("return linear(optional(x), 10)"),
        SpecTypeError, 2, 26, "optional() needs a call", None),
    "return-not-a-tensor": (
        "space", model("return 3"),
        SpecTypeError, 2, 10, "a model returns a tensor, got int", None),
    "constraint-not-a-comparison": (
        "load", model("return linear(x, 10)", after="search { constraint params + flops }"),
        SpecTypeError, 4, 21, "a constraint must be a comparison", None),
    # ---- values out of range ---------------------------------------------------------
    "empty-choice": (
        "load", model("return linear(x, choice())"),
        SpecValueError, 2, 20, "choice() needs at least one alternative", None),
    "inverted-int-range": (
        "space", model("return linear(linear(x, int(10, 5)), 10)"),
        SpecValueError, 2, 27, "int(10, 5) is an empty range", "did you mean int(5, 10)?"),
    "inverted-float-range": (
        "space", model("return linear(dropout(x, float(0.5, 0.1)), 10)"),
        SpecValueError, 2, 28, "float(0.5, 0.1) is an empty range", "float(0.1, 0.5)"),
    "float-log-low-zero": (
        "space", model("return linear(dropout(x, float(0, 0.5, log = true)), 10)"),
        SpecValueError, 2, 34, "float(..., log = true) needs low > 0", None),
    "float-log-low-negative": (
        "space", model("return linear(dropout(x, float(-1, 0.5, log = true)), 10)"),
        SpecValueError, 2, 34, "needs low > 0, got -1.0", None),
    "dropout-p": (
        "space", model("return linear(dropout(x, 1.5), 10)"),
        SpecValueError, 2, 28, "argument 'p' of dropout() must be a number with 0 <= value < 1",
        None),
    "sparsity-fraction": (
        "space", model("return linear(x, 10, sparsity = 1.0)"),
        SpecValueError, 2, 35, "sparsity must be a fraction 0 <= s < 1 or nm(n, m), got 1.0",
        None),
    "sparsity-nm": (
        "space", model("return linear(x, 10, sparsity = nm(4, 2))"),
        SpecValueError, 2, 35, "nm(n, m) keeps n of every m", None),
    "division-by-zero": (
        "space", model("let k = 16 / 0\nreturn linear(x, 10)"),
        SpecValueError, 2, 11, "division by zero", None),
    "division-by-zero-in-a-constant": (
        "load", model("return linear(x, 10)", before="let k = 16 // 0\n"),
        SpecValueError, 1, 9, "division by zero", None),
    "modulo-by-zero": (
        "space", model("return linear(x, 10 % 0)"),
        SpecValueError, 2, 20, "division by zero", None),
    "zero-dimension": (
        "space", model("return linear(x, 10)", head="model m(x: [0]) -> [10] {"),
        SpecValueError, 1, 13, "a dimension must be a positive integer, got 0", None),
    "negative-width": (
        "space", model("return linear(x, -1)"),
        SpecValueError, 2, 20, "must be a positive integer, got -1", None),
    "epochs-zero": (
        "space", model("return linear(x, 10)", after="train { epochs = 0 }"),
        SpecValueError, 4, 18, "epochs must be an integer from 1 to 100,000, got 0", None),
    "learning-rate-zero": (
        "space", model("return linear(x, 10)", after="train { optimizer = adamw(lr = 0) }"),
        SpecValueError, 4, 21, "adamw() setting 'lr' must be a number > 0, got 0", None),
    "same-alternative-twice": (
        "load", model("return linear(x, choice(10, 10))"),
        SpecValueError, 2, 31, "choice() has the alternative 10 twice", None),
    "negative-repeat": (
        "space", model("repeat -1 { x = relu(x) }\nreturn linear(x, 10)"),
        SpecValueError, 2, 10, "repeat needs a whole count >= 0, got -1", None),
    "fractional-repeat": (
        "space", model("repeat 2.5 { x = relu(x) }\nreturn linear(x, 10)"),
        SpecValueError, 2, 10, "got 2.5", None),
    "continuous-decision-steers-flow": (
        "space", model("let p = float(0, 1)\nh = relu(x) if p > 0.5 else x\nreturn linear(h, 10)"),
        SpecValueError, 3, 18, "decision m.p is continuous", "choice(...) or int(...)"),
    "search-holds-a-decision": (
        "load", model("return linear(x, 10)", after="search { trials = int(1, 5) }"),
        SpecValueError, 4, 19, "search setting 'trials' cannot hold a decision", None),
    "search-uses-a-shared-decision": (
        "load", model("return linear(x, 10)", before="let n = choice(1, 2)\n",
                      after="search { trials = n }"),
        SpecValueError, 5, 19, "cannot use 'n': it holds a decision", None),
    # ---- structure ---------------------------------------------------------------------
    "recursion-between-defs": (
        "load", model("return linear(a(x), 10)", before="def a(x) = b(x)\ndef b(x) = a(x)\n"),
        SpecError, 2, 12, "recursion between defs: a -> b -> a", "use `repeat` for depth"),
    "def-calls-itself": (
        "load", model("return linear(f(x), 10)", before="def f(x) = relu(f(x))\n"),
        SpecError, 1, 17, "recursion between defs: f -> f", None),
    "two-models": (
        "load", model("return linear(x, 10)",
                      after="model n(x: [16]) -> [10] {\n  return linear(x, 10)\n}\n"),
        SpecError, 4, 1, "a spec has exactly one model; 'n' is a second one", None),
    "no-model": (
        "load", "let a = 1\n",
        SpecError, 1, 1, "a spec needs exactly one model, found none", "add `model"),
    "two-train-blocks": (
        "load", model("return linear(x, 10)", after="train { epochs = 3 }\ntrain { epochs = 4 }"),
        SpecError, 5, 1, "a second `train` block (the first is at line 4)", None),
    "setting-given-twice": (
        "load", model("return linear(x, 10)", after="train { epochs = 3  epochs = 4 }"),
        SpecError, 4, 21, "train setting 'epochs' is given twice", None),
    "statement-after-return": (
        "load", model("return linear(x, 10)\nh = x"),
        SpecError, 3, 3, "statement after `return` is never reached", None),
    "return-inside-repeat": (
        "load", model("repeat 2 { return x }\nreturn linear(x, 10)"),
        SpecError, 2, 14, "`return` must be the last statement", None),
    "no-return": (
        "load", model("h = linear(x, 10)"),
        SpecError, 1, 1, "model 'm' does not end with `return`", "return <tensor>"),
    "let-defined-twice": (
        "load", model("return linear(x, 10)", before="let a = 1\nlet a = 2\n"),
        SpecError, 2, 5, "'a' is already defined at line 1", None),
    "def-defined-twice": (
        "load", model("return linear(x, 10)", before="def f(x) = x\ndef f(x) = x\n"),
        SpecError, 2, 1, "def 'f' is already defined at line 1", None),
    "def-hides-an-op": (
        "load", model("return linear(x, 10)", before="def relu(x) = x\n"),
        SpecError, 1, 1, "def 'relu' would hide the built-in 'relu'", None),
    # ---- candidates: shapes and require -----------------------------------------------
    "residual-add-of-different-shapes": (
        "build", model("h = linear(x, 32)\nreturn linear(h + x, 10)"),
        ShapeError, 3, 17, "residual add of different shapes [32] and [16]", "same shape"),
    "gating-product-of-different-shapes": (
        "build", model("return linear(x * linear(x, 8), 10)"),
        ShapeError, 2, 17, "elementwise product of different shapes [16] and [8]", None),
    "attention-on-a-vector": (
        "build", model("return linear(attention(x, 2), 10)"),
        ShapeError, 2, 27, "attention needs a sequence [n, d], got shape [16]", None),
    "heads-do-not-divide-the-width": (
        "build", model("return linear(mean(attention(x, 3), 0), 10)",
                       head="model m(x: [4, 10]) -> [10] {"),
        ShapeError, 2, 35, "heads = 3 does not divide the width 10", None),
    "return-shape-differs": (
        "build", model("return linear(x, 12)"),
        ShapeError, 2, 10, "model 'm' returns shape [12] but declares -> [10]", None),
    "reshape-does-not-fit": (
        "build", model("return linear(reshape(x, [3, -1]), 10)"),
        ShapeError, 2, 28, "cannot reshape [16] (16 elements) into [3, -1]", None),
    "conv-on-a-vector": (
        "build", model("return linear(conv(x, 4, 3), 10)"),
        ShapeError, 2, 22, "conv needs an image [c, h, w]", None),
    "require-does-not-hold": (
        "build", model('require 16 > 32, "too narrow"\nreturn linear(x, 10)'),
        RequireError, 2, 11, "too narrow", None),
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_mistake_is_a_located_spec_error(case: str) -> None:
    stage, text, cls, line, col, phrase, hint = CASES[case]
    err = error_at(stage, text)
    assert type(err) is cls, err.format()
    assert issubclass(cls, CandidateError) == (stage == "build")
    assert_located(err, text, line, col)
    assert phrase in err.message, err.format()
    if hint is not None:
        assert hint in (err.hint or ""), err.format()
        assert err.format().endswith("hint: " + err.hint)


def test_an_invalid_candidate_of_a_fine_space() -> None:
    # Half the candidates add [32] to [64]: the space loads, one candidate fails to build.
    text = model("h = linear(x, choice(32, 64))\nh = h + linear(x, 64)\nreturn linear(h, 10)",
                 head="model m(x: [64]) -> [10] {")
    spec = autoarch.loads(text, FILE)
    assert spec.space().count() == 2
    assert spec.build({"m.h": 64}).params > 0
    with pytest.raises(ShapeError) as e:
        spec.build({"m.h": 32})
    assert_located(e.value, text, 3, 7)
    assert "residual add of different shapes [32] and [64]" in e.value.message


@pytest.mark.parametrize("variant", ["crlf", "cr", "bom", "tab", "form-feed"])
def test_locations_survive_line_ends_tabs_and_byte_order_marks(variant: str) -> None:
    text = model("h = lineer(x, 10)\nreturn h")
    col = 7
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    elif variant == "cr":
        text = text.replace("\n", "\r")
    elif variant == "bom":
        text = "\ufeff" + text
    elif variant == "tab":
        text, col = text.replace("  h =", "\th ="), 6
    else:
        text, col = text.replace("  h =", "\f h ="), 7
    err = error_at("load", text)
    assert (err.line, err.column) == (2, col)
    source, caret = err.format().splitlines()[1:3]
    assert source.endswith("h = lineer(x, 10)") and source.isprintable()
    assert caret.index("^") == source.index("lineer") and caret.count("^") == len("lineer")


def test_empty_source_has_no_model() -> None:
    err = error_at("load", "")
    assert err.line == 1 and "found none" in err.message
    assert err.format().startswith(f"{FILE}:1:1: error: a spec needs exactly one model")


# ---- golden output of the most common mistakes ---------------------------------------

GOLDEN = {
    "unknown-op": """\
        f.spec:2:7: error: unknown op 'lineer'
            2 |   h = lineer(x, 10)
              |       ^^^^^^
        hint: did you mean 'linear'?""",
    "missing-comma": """\
        f.spec:2:16: error: unexpected '10'
            2 |   h = linear(x 10)
              |                ^^
        hint: a ',' is missing before '10'?""",
    "unterminated-string": """\
        f.spec:2:17: error: unterminated string
            2 |   require true, "abc
              |                 ^
        hint: close the string with " on the same line""",
    "unclosed-paren": """\
        f.spec:3:3: error: unexpected 'return'
            3 |   return h
              |   ^^^^^^
        hint: the '(' at line 2, column 13 is not closed; add ')' before this""",
    "missing-argument": """\
        f.spec:2:10: error: linear() is missing argument 'out'
            2 |   return linear(x)
              |          ^^^^^^^^^
        hint: it takes x, out, init, sparsity, bias, frozen""",
    "misspelled-statement-keyword": """\
        f.spec:2:3: error: unknown keyword 'reapet'
            2 |   reapet 3 { x = relu(x) }
              |   ^^^^^^
        hint: did you mean 'repeat'?""",
    "wrong-argument-type": """\
        f.spec:2:20: error: argument 'out' of linear() must be an integer, got string
            2 |   return linear(x, "ten")
              |                    ^^^^^""",
    "unknown-act": """\
        f.spec:2:24: error: unknown kind 'gelo' for act()
            2 |   return linear(act(x, gelo), 10)
              |                        ^^^^
        hint: did you mean 'gelu'? expected one of: elu, gelu, relu, selu, sigmoid, silu, tanh""",
    "unknown-basis": """\
        f.spec:2:36: error: unknown basis 'splin' for kan()
            2 |   return linear(kan(x, 16, basis = splin), 10)
              |                                    ^^^^^
        hint: did you mean 'bspline'? expected one of: bspline, rational, rbf, relu""",
    "residual-add-of-different-shapes": """\
        f.spec:3:17: error: residual add of different shapes [32] and [16]
            3 |   return linear(h + x, 10)
              |                 ^^^^^
        hint: both sides of + and * must have the same shape""",
}


@pytest.mark.parametrize("case", GOLDEN, ids=str)
def test_golden_error_text(case: str) -> None:
    stage, text = CASES[case][:2]
    assert error_at(stage, text).format() == dedent(GOLDEN[case])
    assert str(error_at(stage, text)) == dedent(GOLDEN[case])


# ---- documented limits: absurd sizes fail at once --------------------------------------


def _fails_fast(stage: str, text: str, phrase: str) -> SpecLimitError:
    start = time.perf_counter()
    err = error_at(stage, text)
    elapsed = time.perf_counter() - start
    assert type(err) is SpecLimitError, err.format()
    assert phrase in err.message, err.format()
    assert err.line is not None and err.format().splitlines()[2].strip().startswith("| ")
    assert elapsed < 20, f"took {elapsed:.1f} s to fail"  # fails fast, never hangs
    return err


LIMIT_CASES: dict[str, tuple[str, str, str]] = {
    "repeat-a-billion-times": (
        "load", model("repeat 1000000000 { x = relu(x) }\nreturn linear(x, 10)"),
        f"repeat count 1,000,000,000 exceeds the limit {limits.MAX_REPEAT:,}"),
    "repeat-a-billion-times-empty": (
        "load", model("repeat 1000000000 { }\nreturn linear(x, 10)"),
        f"repeat count 1,000,000,000 exceeds the limit {limits.MAX_REPEAT:,}"),
    "repeat-a-chosen-count-up-to-a-billion": (
        "load", model("repeat int(1, 1000000000) { x = relu(x) }\nreturn linear(x, 10)"),
        "repeat count up to 1,000,000,000 exceeds the limit"),
    "repeat-a-choice-of-a-billion": (
        "space", model("repeat choice(1, 1000000000) { x = relu(x) }\nreturn linear(x, 10)"),
        "repeat count 1,000,000,000 exceeds the limit"),
    "shared-count-with-a-billion-values": (
        "space", model("repeat n { x = relu(x) }\nreturn linear(x, 10)",
                       before="let n = int(1, 1000000000)\n"),
        "has 1,000,000,000 values"),
    "width-of-a-trillion": (
        "build", model("return linear(linear(x, 1e12), 10)"),
        "dimension 1,000,000,000,000"),
    "nested-repeats-of-millions-of-ops": (
        "load", model("repeat 5000 { repeat 5000 { x = relu(x) } }\nreturn linear(x, 10)"),
        f"every candidate would have more than {limits.MAX_NODES:,} ops"),
    "nested-repeats-of-millions-of-iterations": (
        "space", model("repeat 5000 { repeat 5000 { let a = 1 } }\nreturn linear(x, 10)"),
        "nested repeats would run 25,000,000 iterations"),
    "nested-chosen-counts": (
        "space", model("repeat int(1, 5000) { repeat choice(1, 5000) { x = relu(x) } }\n"
                       "return linear(x, 10)"),
        "nested repeats would run 25,000,000 iterations"),
    "doubling-defs": (
        "load", model("return linear(f26(x), 10)", before="def f0(x) = relu(x)\n" + "".join(
            f"def f{i}(x) = f{i - 1}(f{i - 1}(x))\n" for i in range(1, 27))),
        f"every candidate would have more than {limits.MAX_NODES:,} ops"),
    "stepped-float-of-a-billion-values": (
        "space", model("return linear(dropout(x, float(0, 0.5, step = 1e-9)), 10)"),
        f"has 500,000,001 values; the limit is {limits.MAX_STEPPED_VALUES:,}"),
    "stepped-float-past-overflow": (
        "space", model("return linear(dropout(x, float(0, 1e300, step = 1e-300)), 10)"),
        "has too many values"),
    "huge-integer": (
        "space", model("return linear(x, 10 ** 100000)"), "10 ** 100000 is too large"),
}


@pytest.mark.parametrize("case", LIMIT_CASES, ids=str)
def test_absurd_sizes_fail_fast(case: str) -> None:
    stage, text, phrase = LIMIT_CASES[case]
    err = _fails_fast(stage, text, phrase) if "too large" not in phrase else None
    if err is None:  # arithmetic overflow is a value error, found as fast
        start = time.perf_counter()
        value_err = error_at(stage, text)
        assert isinstance(value_err, SpecValueError) and phrase in value_err.message
        assert time.perf_counter() - start < 5


def test_limit_errors_point_at_the_culprit() -> None:
    stage, text, phrase = LIMIT_CASES["doubling-defs"]
    err = _fails_fast(stage, text, phrase)
    assert err.line == text.count("\n") - 1  # the model's return line
    assert text.splitlines()[err.line - 1][err.column - 1:].startswith("f26(x)")
    stage, text, phrase = LIMIT_CASES["nested-repeats-of-millions-of-iterations"]
    err = _fails_fast(stage, text, phrase)
    assert (err.line, err.column) == (2, 24)  # the inner count, which crosses the limit


def test_only_some_candidates_too_large() -> None:
    # The load-time bound counts the cheapest alternative: this space is fine, and
    # only the candidate that takes the 110,000-op alternative meets the node limit.
    text = model("return linear(choice(big: g(x), small: relu(x)), 10)", before="""
        def g(x) {
          h = x
          repeat 10000 { h = relu(relu(relu(relu(relu(relu(relu(relu(relu(relu(relu(h))))))))))) }
          return h
        }
    """)
    spec = autoarch.loads(text, FILE)
    assert spec.space().count() == 2
    assert len(spec.build({"m.return": "small"})) == 4
    start = time.perf_counter()
    with pytest.raises(SpecLimitError, match=f"more than {limits.MAX_NODES:,} ops"):
        spec.build({"m.return": "big"})
    assert time.perf_counter() - start < 5


def test_deeply_nested_brackets() -> None:
    deep = "(" * 1000 + "x" + ")" * 1000
    _fails_fast("load", model(f"return linear({deep}, 10)"), "brackets nested more than")
    lists = "[" * 500 + "1" + "]" * 500
    _fails_fast("load", model(f"let a = {lists}\nreturn linear(x, 10)"),
                "brackets nested more than")


def test_brackets_within_the_limit_are_fine() -> None:
    ok = "(" * 50 + "x" + ")" * 50
    assert autoarch.loads(model(f"return linear({ok}, 10)"), FILE).space().count() == 1


def test_huge_source() -> None:
    filler = "# " + "x" * 98 + "\n"
    text = filler * (parser.MAX_SOURCE_CHARS // len(filler) + 1) + model("return linear(x, 10)")
    err = _fails_fast("load", text, f"the limit is {parser.MAX_SOURCE_CHARS:,}")
    assert err.line == 1


def test_too_many_tokens() -> None:
    body = "h = relu(h)\n" * 60_000  # 720,000 characters, 360,000 tokens
    err = _fails_fast("load", model("h = x\n" + body + "return linear(h, 10)"),
                      f"spec has more than {parser.MAX_TOKENS:,} tokens")
    assert err.line > 8_000


def test_a_long_spec_within_the_limits_compiles_in_seconds() -> None:
    body = "h = relu(h)\n" * 8_000  # 48,000 tokens
    start = time.perf_counter()
    spec = autoarch.loads(model("h = x\n" + body + "return linear(h, 10)",
                                head="model m(x: [16]) -> [10] {"), FILE)
    assert len(spec.build(spec.space().sample(0))) == 8_000 + 3
    assert time.perf_counter() - start < 10


def test_long_chains_of_defs_are_a_limit() -> None:
    defs = "def f0(x) = relu(x)\n" + "".join(f"def f{i}(x) = f{i - 1}(x)\n"
                                           for i in range(1, 1000))
    err = _fails_fast("load", model("return linear(f999(x), 10)", before=defs),
                      f"evaluation would nest more than {limits.MAX_EVAL_DEPTH} deep")
    assert err.line == limits.MAX_EVAL_DEPTH  # the first def whose chain is too deep
    fine = "def f0(x) = relu(x)\n" + "".join(f"def f{i}(x) = f{i - 1}(x)\n"
                                           for i in range(1, 60))
    spec = autoarch.loads(model("return linear(f59(x), 10)", before=fine), FILE)
    assert len(spec.build({})) == 4  # input, relu, linear, output


def test_long_operator_chains_are_a_limit() -> None:
    for n in (150, 900, 20_000):
        chain = " + ".join(["x"] * n)
        _fails_fast("load", model(f"return linear({chain}, 10)"),
                    f"expression nested more than {parser.MAX_EXPR_DEPTH} deep")
    chain = " + ".join(["x"] * 90)
    assert autoarch.loads(model(f"return linear({chain}, 10)"), FILE).build({}).params > 0


def test_exponential_analysis_is_stopped_by_the_step_limit() -> None:
    # each def call is a fresh decision: 2^24 calls to analyse, for a space this small
    defs = "def f0(x) = choice(relu(x), x)\n" + "".join(
        f"def f{i}(x) = f{i - 1}(f{i - 1}(x))\n" for i in range(1, 25))
    _fails_fast("space", model("return linear(f24(x), 10)", before=defs),
                f"over {limits.MAX_ANALYSIS_STEPS:,} evaluation steps")


def test_a_forking_decision_with_too_many_values() -> None:
    text = model("h = relu(x) if n > 3 else x\nreturn linear(h, 10)",
                 before="let n = int(1, 1000000)\n")
    _fails_fast("space", text, "has 1,000,000 values")


@pytest.mark.parametrize("literal", ["9" * 5000, "1" + "0" * 4999 + "k", "0" * 10 + "7" * 4300],
                         ids=["5000-digits", "5000-digits-and-a-suffix", "4300-digits"])
def test_a_number_literal_of_thousands_of_digits(literal: str) -> None:
    # Python refuses int() of over 4,300 digits with a ValueError: this must be ours
    text = model(f"let a = {literal}\nreturn linear(x, 10)")
    err = _fails_fast("load", text, f"integers are limited to {limits.MAX_INT_BITS} bits")
    col = len("  let a = ") + 1
    assert (err.filename, err.line, err.column) == (FILE, 2, col)
    head, source, caret = err.format().splitlines()[:3]
    assert head.startswith(f"{FILE}:2:{col}: error: number ")
    assert source.startswith("    2 |   let a = " + literal[:20])  # a window of the line
    assert caret.index("^") == source.index("|") + 2 + col - 1
    assert len(err.message) < 200  # the number is not repeated in full


def test_number_literals_up_to_the_integer_limit() -> None:
    # the limit is the arithmetic one: 2**256 - 1 has 256 bits, 2**256 has 257
    top = 2 ** limits.MAX_INT_BITS
    spec = autoarch.loads(model(f"let a = {top - 1}\nreturn linear(x, 10)"), FILE)
    assert spec.build({}).params == 16 * 10 + 10
    err = _fails_fast("load", model(f"let a = {top}\nreturn linear(x, 10)"), "limited to")
    assert err.line == 2


# ---- nothing in a spec runs Python ------------------------------------------------------

_EVENTS: list[str] = []
_WATCHING: list[bool] = [False]
#: audit events that running Python code from a spec would raise
_ESCAPE_EVENTS = ("exec", "compile", "import", "open", "os.system", "subprocess.Popen",
                  "os.posix_spawn", "os.exec", "builtins.input", "socket.connect")


def _audit(event: str, args: tuple) -> None:
    if _WATCHING[0] and event in _ESCAPE_EVENTS:
        _EVENTS.append(event)


ESCAPES = {
    "__import__": ('h = __import__("os")', SpecNameError, "unknown op '__import__'"),
    "eval": ('h = eval("1")', SpecNameError, "unknown op 'eval'"),
    "exec-as-a-statement": ('exec("import os")', SpecSyntaxError, "unexpected '('"),
    "exec-in-an-expression": ('h = exec("import os")', SpecNameError, "unknown op 'exec'"),
    "open": ('h = open("x")', SpecNameError, "unknown op 'open'"),
    "os.system": ('h = os.system("ls")', SpecSyntaxError, "unexpected character '.'"),
    "dunder-attribute": ("h = x.__class__", SpecSyntaxError, "unexpected character '.'"),
    "getattr": ('h = getattr(x, "y")', SpecNameError, "unknown op 'getattr'"),
    "compile": ('h = compile("1", "f", "eval")', SpecNameError, "unknown op 'compile'"),
    "lambda": ("h = lambda y: y", SpecSyntaxError, "unexpected"),
    "called-lambda": ("h = (lambda: 1)()", SpecSyntaxError, "unexpected"),
    "comprehension": ("h = [i for i in range(3)]", SpecSyntaxError, "unexpected name 'for'"),
    "import-statement": ("import os", SpecSyntaxError, "unexpected"),
    "dunder-builtins": ("h = relu(__builtins__)", SpecNameError,
                        "unknown name '__builtins__'"),
}


@pytest.fixture(scope="module")
def audit() -> Callable[[], list[str]]:
    sys.addaudithook(_audit)  # hooks cannot be removed; this one only records when asked
    # warm every error path up, so that lazy imports are not mistaken for escapes
    for text in (model("h = nope(x)\nreturn h"), model("h = linear(x 10)\nreturn h"),
                 model("h = x.y\nreturn h"), model("h = y\nreturn linear(h, 10)")):
        with pytest.raises(SpecError) as e:
            autoarch.loads(text, FILE).space()
        e.value.format()

    def events() -> list[str]:
        return list(_EVENTS)

    return events


@pytest.mark.parametrize("case", ESCAPES, ids=str)
def test_python_escapes_are_just_unknown_names(case: str, audit, tmp_path, monkeypatch) -> None:
    line, cls, phrase = ESCAPES[case]
    monkeypatch.chdir(tmp_path)
    text = model(f"{line}\nreturn linear(x, 10)")
    _EVENTS.clear()
    _WATCHING[0] = True
    try:
        with pytest.raises(SpecError) as e:
            spec = autoarch.loads(text, FILE)
            spec.build(spec.space().sample(0))
        e.value.format()
    finally:
        _WATCHING[0] = False
    assert type(e.value) is cls, e.value.format()
    assert phrase in e.value.message
    assert e.value.line == 2
    assert audit() == [], "a spec made Python do something"
    assert list(tmp_path.iterdir()) == []


# ---- model files: autoarch.load_model trusts nothing in them -----------------------------

SMALL = "model m(x: [64]) -> [10] {\n  return linear(x, 10)\n}\n"
#: 64*370,000 + 370,000 + 370,000*370,000 + 370,000 + 370,000*10 + 10 parameters
HUGE = ("model m(x: [64]) -> [10] {\n  h = linear(linear(x, 370000), 370000)\n"
        "  return linear(h, 10)\n}\n")
HUGE_PARAMS = 64 * 370_000 + 370_000 + 370_000 * 370_000 + 370_000 + 370_000 * 10 + 10


def _saved_small(path) -> dict:
    """A real model file of SMALL at ``path``; returns the dict torch.load reads from it."""
    import torch

    spec = autoarch.loads(SMALL, "small.spec")
    autoarch.save_model(autoarch.compile(spec, {}, seed=0), spec, {}, path, seed=0)
    return torch.load(path, weights_only=True)


def _one_line_command_error(path, phrase: str) -> autoarch.CommandError:
    with pytest.raises(SpecError) as e:
        autoarch.load_model(path)
    assert type(e.value) is autoarch.CommandError, e.value.format()
    text = e.value.format()
    assert "\n" not in text and text.startswith("error: "), text
    assert phrase in text, text
    return e.value


def test_load_model_of_files_that_are_not_models(tmp_path) -> None:
    import random
    import zipfile

    import torch

    (tmp_path / "notes.txt").write_text("weights: 1, 2, 3\n")
    _one_line_command_error(tmp_path / "notes.txt", "is not a model saved by autoarch")
    (tmp_path / "random.bin").write_bytes(random.Random(0).randbytes(4096))
    _one_line_command_error(tmp_path / "random.bin", "is not a model saved by autoarch")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "a zip archive, not torch's")
    _one_line_command_error(tmp_path / "other.zip", "torch cannot read it")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "foreign.pt")
    _one_line_command_error(tmp_path / "foreign.pt", "a torch file, but not an autoarch model")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    _one_line_command_error(tmp_path / "tensor.pt", "a torch file, but not an autoarch model")
    (tmp_path / "empty.pt").write_bytes(b"")
    _one_line_command_error(tmp_path / "empty.pt", "is not a model saved by autoarch")
    _one_line_command_error(tmp_path / "missing.pt", "no such file")
    _one_line_command_error(tmp_path, "is a directory")


def test_load_model_of_edited_model_files(tmp_path) -> None:
    import torch

    data = _saved_small(tmp_path / "m.pt")
    for key in ("spec", "choices", "state_dict"):
        torch.save({k: v for k, v in data.items() if k != key}, tmp_path / "cut.pt")
        _one_line_command_error(tmp_path / "cut.pt", f"its '{key}' entry is missing")
    torch.save({**data, "state_dict": {"weight": torch.zeros(2)}}, tmp_path / "w.pt")
    _one_line_command_error(tmp_path / "w.pt", "its weights do not fit the model")
    # a bad embedded spec is a mistake in a spec: located in the text the file holds
    torch.save({**data, "spec": SMALL.replace("linear", "lineer")}, tmp_path / "typo.pt")
    with pytest.raises(SpecNameError) as e:
        autoarch.load_model(tmp_path / "typo.pt")
    assert (e.value.filename, e.value.line, e.value.column) == ("small.spec", 2, 10)


def test_load_model_refuses_a_huge_model_before_allocating_it(tmp_path) -> None:
    import subprocess

    import torch

    data = _saved_small(tmp_path / "m.pt")
    torch.save({**data, "spec": HUGE}, tmp_path / "huge.pt")
    # In a child whose address space is capped at 8 GiB: allocating the 550 GB of
    # weights first would end in a MemoryError or a RuntimeError, not this message.
    code = ("import resource, autoarch\n"
            "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, resource.RLIM_INFINITY))\n"
            "try:\n    autoarch.load_model('huge.pt')\n"
            "except autoarch.SpecError as e:\n    print(type(e).__name__, e.format())\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert time.perf_counter() - start < 60
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"CommandError error: huge.pt asks for a model of "
                                  f"{HUGE_PARAMS:,} parameters; the limit is "
                                  f"{limits.MAX_PARAMS:,} (MAX_PARAMS)"), proc.stdout
    assert proc.stdout.count("\n") == 1


# ---- warnings: bidirectional control characters ------------------------------------------

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Trojan Source" text reads in another order


def test_bidirectional_controls_are_located_warnings() -> None:
    text = model(f'# a comment {RLO} that reads backwards\n'
                 f'let tag = choice("a{RLO}b", "c")\nreturn linear(x, 10)')
    spec = autoarch.loads(text, FILE)  # a warning, not an error: the spec loads
    lines = text.split("\n")
    where = [(i + 1, ln.index(RLO) + 1) for i, ln in enumerate(lines) if RLO in ln]
    assert where == [(2, 15), (3, 22)]
    assert [(w.filename, w.line, w.column) for w in spec.warnings] == [(FILE, *w) for w in where]
    comment, string = spec.warnings
    for w, place in ((comment, "a comment"), (string, "a string")):
        assert w.kind == "warning" and isinstance(w, SpecError)
        head, source, caret = w.format().splitlines()[:3]
        assert head.startswith(f"{FILE}:{w.line}:{w.column}: warning: bidirectional control "
                               f"character U+202E (RIGHT-TO-LEFT OVERRIDE) in {place}")
        assert RLO not in source  # shown as a space: the terminal cannot reorder the line
        assert caret.index("^") == source.index("|") + 2 + w.column - 1


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
                                  "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c"])
def test_every_bidirectional_control_is_warned_of(char: str) -> None:
    spec = autoarch.loads(model(f"# {char}\nreturn linear(x, 10)"), FILE)
    assert [(w.line, w.column) for w in spec.warnings] == [(2, 5)]
    assert f"U+{ord(char):04X}" in spec.warnings[0].message


def test_plain_text_has_no_warnings() -> None:
    # right-to-left letters themselves are fine: only the invisible controls are warned of
    spec = autoarch.loads(model('let tag = choice("\u05e9\u05dc\u05d5\u05dd", "c")  # \u05d0\n'
                                "return linear(x, 10)"), FILE)
    assert spec.warnings == []


def test_many_lines_of_bidirectional_controls_are_summed_up() -> None:
    body = "".join(f"# {RLO}{RLO}\n" for _ in range(500)) + "return linear(x, 10)"
    spec = autoarch.loads(model(body), FILE)
    assert 1 < len(spec.warnings) <= 20
    assert "500 lines" in spec.warnings[-1].message
