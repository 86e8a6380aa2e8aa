"""Parse spec text into the typed AST (``dsl.ast``); turn Lark's failures into SpecErrors."""

from __future__ import annotations

import functools
import re
import sys
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from . import ast
from .errors import Span, SpecError, SpecLimitError, SpecSyntaxError, suggest

#: Largest spec text accepted, in characters.
MAX_SOURCE_CHARS = 1_000_000
#: Deepest bracket nesting accepted.
MAX_NESTING = 100

KEYWORDS = (
    "let", "def", "model", "train", "search", "repeat", "as", "with", "require",
    "return", "constraint", "if", "else", "and", "or", "not", "true", "false",
)
STATEMENT_KEYWORDS = ("let", "repeat", "with", "require", "return")
ITEM_KEYWORDS = ("let", "def", "model", "train", "search")
_SUFFIX = {"k": 1_000, "M": 1_000_000, "G": 1_000_000_000}


@functools.cache
def _lark() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=True)


@functools.cache
def _terminal_names() -> dict[str, str]:
    """Readable descriptions of the grammar's terminals, for 'expected ...' hints."""
    out = {}
    for t in _lark().terminals:
        if t.pattern.type == "str":
            out[t.name] = f"'{t.pattern.value}'"
    out.update(NAME="a name", NUMBER="a number", STRING="a string",
               COMP_OP="a comparison", **{"$END": "end of file"})
    return out


def _describe(names: set[str] | frozenset[str]) -> list[str]:
    table = _terminal_names()
    return sorted({table.get(n, n) for n in names})


class _Builder(Transformer):
    """Parse tree -> ast dataclasses. Knows nothing about meaning."""

    def __init__(self, filename: str):
        super().__init__()
        self.filename = filename

    def _span(self, meta) -> Span:
        return Span(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return Span(self.filename, tok.line, tok.column, tok.end_line, tok.end_column)

    # -- literals
    @v_args(meta=True)
    def number(self, meta, children):
        (tok,) = children
        return ast.Number(self._span(meta), _number(tok, self._tspan(tok)))

    @v_args(meta=True)
    def string(self, meta, children):
        (tok,) = children
        return ast.String(self._span(meta), _unescape(tok, self._tspan(tok)))

    @v_args(meta=True)
    def true(self, meta, children):
        return ast.Bool(self._span(meta), True)

    @v_args(meta=True)
    def false(self, meta, children):
        return ast.Bool(self._span(meta), False)

    @v_args(meta=True)
    def name(self, meta, children):
        return ast.Name(self._span(meta), str(children[0]))

    @v_args(meta=True)
    def list_(self, meta, children):
        return ast.ListExpr(self._span(meta), tuple(c for c in children if c is not None))

    @v_args(meta=True)
    def call(self, meta, children):
        tok, args = children
        return ast.Call(self._span(meta), str(tok), self._tspan(tok), tuple(args or ()))

    def args(self, children):
        return children

    @v_args(meta=True)
    def pos_arg(self, meta, children):
        return ast.Arg(self._span(meta), "pos", None, children[0])

    @v_args(meta=True)
    def kw_arg(self, meta, children):
        return ast.Arg(self._span(meta), "kw", str(children[0]), children[1])

    @v_args(meta=True)
    def label_arg(self, meta, children):
        return ast.Arg(self._span(meta), "label", str(children[0]), children[1])

    # -- operators
    def _bin(op):  # noqa: N805 - a small factory used at class creation time
        @v_args(meta=True)
        def build(self, meta, children):
            return ast.BinOp(self._span(meta), op, children[0], children[1])

        return build

    add, sub, mul, div = _bin("+"), _bin("-"), _bin("*"), _bin("/")
    floordiv, mod, pow = _bin("//"), _bin("%"), _bin("**")
    and_, or_ = _bin("and"), _bin("or")
    del _bin

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.UnaryOp(self._span(meta), "-", children[0])

    @v_args(meta=True)
    def pos(self, meta, children):
        return ast.UnaryOp(self._span(meta), "+", children[0])

    @v_args(meta=True)
    def not_(self, meta, children):
        return ast.UnaryOp(self._span(meta), "not", children[0])

    @v_args(meta=True)
    def compare(self, meta, children):
        return ast.Compare(self._span(meta), tuple(str(t) for t in children[1::2]),
                           tuple(children[0::2]))

    @v_args(meta=True)
    def ifexp(self, meta, children):
        body, test, orelse = children
        return ast.IfExp(self._span(meta), body, test, orelse)

    # -- statements
    @v_args(meta=True)
    def let(self, meta, children):
        tok, value = children
        return ast.Let(self._span(meta), str(tok), self._tspan(tok), value)

    @v_args(meta=True)
    def assign(self, meta, children):
        tok, value = children
        return ast.Assign(self._span(meta), str(tok), self._tspan(tok), value)

    def body(self, children):
        return tuple(children)

    @v_args(meta=True)
    def repeat(self, meta, children):
        count, var, body = children
        return ast.Repeat(self._span(meta), count, str(var) if var is not None else None, body)

    @v_args(meta=True)
    def binding(self, meta, children):
        return ast.Binding(self._span(meta), str(children[0]), children[1])

    @v_args(meta=True)
    def with_(self, meta, children):
        return ast.With(self._span(meta), tuple(children[:-1]), children[-1])

    @v_args(meta=True)
    def require(self, meta, children):
        cond, msg = children
        text = _unescape(msg, self._tspan(msg)) if msg is not None else None
        return ast.Require(self._span(meta), cond, text)

    @v_args(meta=True)
    def return_(self, meta, children):
        return ast.Return(self._span(meta), children[0])

    # -- items
    @v_args(meta=True)
    def param(self, meta, children):
        return ast.Param(self._span(meta), str(children[0]), children[1])

    def params(self, children):
        return tuple(children)

    @v_args(meta=True)
    def def_(self, meta, children):
        name, params, rest = children
        params = params or ()
        if isinstance(rest, tuple):
            return ast.Def(self._span(meta), str(name), params, rest, None)
        return ast.Def(self._span(meta), str(name), params, None, rest)

    def shape(self, children):
        return tuple(children)

    @v_args(meta=True)
    def model(self, meta, children):
        name, input_name, in_shape, out_shape, body = children
        return ast.Model(self._span(meta), str(name), str(input_name), in_shape, out_shape, body)

    @v_args(meta=True)
    def setting(self, meta, children):
        return ast.Setting(self._span(meta), str(children[0]), children[1])

    @v_args(meta=True)
    def constraint(self, meta, children):
        return ast.Constraint(self._span(meta), children[0])

    @v_args(meta=True)
    def train(self, meta, children):
        return ast.Train(self._span(meta), tuple(children))

    @v_args(meta=True)
    def search(self, meta, children):
        settings = tuple(c for c in children if isinstance(c, ast.Setting))
        constraints = tuple(c for c in children if isinstance(c, ast.Constraint))
        return ast.Search(self._span(meta), settings, constraints)

    def start(self, children):
        return tuple(children)


def _number(tok: Token, span: Span) -> int | float:
    text = str(tok)
    mult = 1
    if text[-1] in _SUFFIX:
        mult, text = _SUFFIX[text[-1]], text[:-1]
    if re.fullmatch(r"\d+", text):
        return int(text) * mult
    value = float(text) * mult
    if value != value or value in (float("inf"), float("-inf")):
        raise SpecSyntaxError(f"number {tok} is out of range", span)
    if mult != 1 and value.is_integer():
        return int(value)
    return value


def _unescape(tok: Token, span: Span) -> str:
    body = str(tok)[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt not in '"\\':
                col = span.column + 1 + i
                raise SpecSyntaxError(
                    f"unknown escape '\\{nxt}' in string",
                    Span(span.filename, span.line, col, span.line, col + 2),
                    hint='only \\" and \\\\ are escapes in spec strings',
                )
            out.append(nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _check_size(text: str, filename: str) -> None:
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecLimitError(
            f"spec is {len(text):,} characters; the limit is {MAX_SOURCE_CHARS:,}",
            Span(filename, 1, 1, 1, 2),
        )
    depth, line, col = 0, 1, 0
    in_str = in_comment = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment, in_str = line + 1, 0, False, False
            continue
        if in_comment:
            continue
        if in_str:
            in_str = ch != '"'
            continue
        if ch == "#":
            in_comment = True
        elif ch == '"':
            in_str = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise SpecLimitError(
                    f"brackets nested more than {MAX_NESTING} deep",
                    Span(filename, line, col, line, col + 1),
                    hint="split the expression with `let` bindings or `def`s",
                )
        elif ch in ")]}":
            depth = max(depth - 1, 0)


def parse(text: str, filename: str = "<spec>") -> ast.Module:
    """Parse spec text into an :class:`ast.Module`. Raises :class:`SpecError`."""
    try:
        _check_size(text, filename)
        tree = _lark().parse(text)
    except SpecError as e:
        raise e.with_source(text) from None
    except UnexpectedInput as e:
        raise _syntax_error(e, text, filename).with_source(text) from None
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # long operator chains nest deeply
    try:
        items = _Builder(filename).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SpecError):
            raise e.orig_exc.with_source(text) from None
        raise
    except RecursionError:
        raise SpecLimitError(
            "expression nested too deeply to compile", Span(filename, 1, 1, 1, 2),
            hint="split the expression with `let` bindings", source=text,
        ) from None
    finally:
        sys.setrecursionlimit(limit)
    end = text.count("\n") + 1
    return ast.Module(Span(filename, 1, 1, end, 1), tuple(items), text, filename)


def _prev_token(text: str, pos: int) -> Token | None:
    prev = None
    try:
        for tok in _lark().lex(text[:pos]):
            prev = tok
    except UnexpectedInput:
        return None
    return prev


def _syntax_error(e: UnexpectedInput, text: str, filename: str) -> SpecError:
    line, col = getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        span = Span(filename, line, col, line, col + 1)
        if ch == '"':
            return SpecSyntaxError("unterminated string", span,
                                   hint='close the string with " on the same line')
        return SpecSyntaxError(f"unexpected character {ch!r}", span,
                               hint=_expected_hint(e.allowed))
    if isinstance(e, UnexpectedEOF) or (
        isinstance(e, UnexpectedToken) and e.token.type == "$END"
    ):
        lines = text.splitlines() or [""]
        last = len(lines)
        span = Span(filename, last, len(lines[-1]) + 1, last, len(lines[-1]) + 2)
        expected = e.expected if isinstance(e, UnexpectedEOF) else e.accepts or e.expected
        hint = _expected_hint(expected)
        if "RBRACE" in expected:
            hint = "a '{' block is not closed; add '}'"
        return SpecSyntaxError("unexpected end of file", span, hint=hint)
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    span = Span(filename, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + 1)
    expected = set(e.accepts or e.expected)
    what = f"'{tok}'" if tok.type != "NAME" else f"name '{tok}'"
    message = f"unexpected {what}"
    hint = _expected_hint(expected)
    # A misspelled keyword reads as a name: suggest the keyword itself.
    keywords = [k for k in KEYWORDS if k.upper() in expected]
    if tok.type == "NAME" and keywords:
        near = suggest(str(tok), keywords)
        if near and "did you mean" in near:
            hint = near.split("?")[0] + "?"
    prev = _prev_token(text, tok.start_pos)
    if prev is not None and prev.type == "NAME" and prev.line == tok.line:
        near = suggest(str(prev), STATEMENT_KEYWORDS + ITEM_KEYWORDS)
        if near and "did you mean" in near and str(prev) not in KEYWORDS:
            hint = f"'{prev}' is not a keyword; " + near.split("?")[0] + "?"
    return SpecSyntaxError(message, span, hint=hint)


def _expected_hint(expected) -> str | None:
    names = _describe(set(expected or ()))
    if not names:
        return None
    if len(names) > 12:
        names = names[:12] + ["..."]
    return "expected " + ", ".join(names)
