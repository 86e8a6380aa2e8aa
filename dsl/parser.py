"""Parse spec text into the typed AST (``dsl.ast``); turn Lark's failures into SpecErrors."""

from __future__ import annotations

import dataclasses
import functools
import re
from importlib import resources
from typing import Any

from lark import Lark, Token, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.visitors import Transformer_NonRecursive

from ..compiler.limits import MAX_INT_BITS
from . import ast
from .errors import Span, SpecError, SpecLimitError, SpecSyntaxError, suggest

#: Largest spec text accepted, in characters.
MAX_SOURCE_CHARS = 1_000_000
#: Most tokens accepted (words, numbers, strings and punctuation marks, roughly):
#: parsing takes some 30 microseconds a token, so this keeps it to about a second.
MAX_TOKENS = 50_000
#: Deepest bracket nesting accepted.
MAX_NESTING = 100
#: Deepest expression accepted: operands within operands, brackets or not
#: (`a + b + c` is 2 deep); it bounds how deep every later pass recurses.
MAX_EXPR_DEPTH = 100

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


class _Builder(Transformer_NonRecursive):
    """Parse tree -> ast dataclasses. Knows nothing about meaning.

    Non-recursive, so that long operator chains cannot exhaust Python's stack;
    `_check_depth` then bounds the depth for every pass after it.
    """

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


#: digits of the largest integer literal: 2**MAX_INT_BITS has this many digits or more
_MAX_INT_DIGITS = len(str(2**MAX_INT_BITS))


def _shown(tok: Token) -> str:
    """A number as an error message quotes it: thousands of digits shortened."""
    text = str(tok)
    return text if len(text) <= 24 else f"{text[:10]}...{text[-10:]} ({len(text):,} characters)"


def _number(tok: Token, span: Span) -> int | float:
    text = str(tok)
    mult = 1
    if text[-1] in _SUFFIX:
        mult, text = _SUFFIX[text[-1]], text[:-1]
    if re.fullmatch(r"\d+", text):
        # counted before int(): Python refuses (ValueError) to convert over 4,300 digits
        digits = text.lstrip("0")
        if len(digits) > _MAX_INT_DIGITS or (int(digits or "0") * mult).bit_length() > MAX_INT_BITS:
            raise SpecLimitError(
                f"number {_shown(tok)} is too large: integers are limited to "
                f"{MAX_INT_BITS} bits", span,
                hint="a number this large is a mistake; the limits are in "
                     "autoarch/compiler/limits.py")
        return int(digits or "0") * mult
    value = float(text) * mult
    if value != value or value in (float("inf"), float("-inf")):
        raise SpecSyntaxError(f"number {_shown(tok)} is out of range", span)
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


#: what the size check counts as tokens; comments and strings are skipped whole
_ROUGH_TOKEN = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?|[A-Za-z0-9_.]+|\S')


def _span_at(text: str, filename: str, pos: int) -> Span:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return Span(filename, line, col, line, col + 1)


def _check_size(text: str, filename: str) -> None:
    """The source limits, checked before parsing: characters, tokens, bracket nesting."""
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecLimitError(
            f"spec is {len(text):,} characters; the limit is {MAX_SOURCE_CHARS:,}",
            Span(filename, 1, 1, 1, 2),
        )
    depth = tokens = 0
    for m in _ROUGH_TOKEN.finditer(text):
        c = m.group()[0]
        if c == "#":
            continue
        tokens += 1
        if tokens > MAX_TOKENS:
            raise SpecLimitError(f"spec has more than {MAX_TOKENS:,} tokens",
                                 _span_at(text, filename, m.start()),
                                 hint="split it, or move repetition into `repeat` and `def`")
        if c in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise SpecLimitError(
                    f"brackets nested more than {MAX_NESTING} deep",
                    _span_at(text, filename, m.start()),
                    hint="split the expression with `let` bindings or `def`s",
                )
        elif c in ")]}":
            depth = max(depth - 1, 0)


def _check_depth(items: tuple[ast.Node, ...]) -> None:
    """No expression nests deeper than MAX_EXPR_DEPTH (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(item, 0) for item in items]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, tuple):
            stack.extend((x, depth) for x in node)
            continue
        if not isinstance(node, ast.Node):
            continue
        if isinstance(node, ast.Expr):
            depth += 1
            if depth > MAX_EXPR_DEPTH:
                raise SpecLimitError(
                    f"expression nested more than {MAX_EXPR_DEPTH} deep", node.span,
                    hint="split the expression with `let` bindings or `def`s")
        stack.extend((getattr(node, f.name), depth) for f in dataclasses.fields(node)
                     if f.name != "span")


def parse(text: str, filename: str = "<spec>") -> ast.Module:
    """Parse spec text into an :class:`ast.Module`. Raises :class:`SpecError`.

    Line ends are normalised to ``\n`` and a leading byte-order mark dropped, so that
    lines and columns mean the same to the parser, to errors and to editors.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.removeprefix("\ufeff")
    try:
        _check_size(text, filename)
        tree = _lark().parse(text)
    except SpecError as e:
        raise e.with_source(text) from None
    except UnexpectedInput as e:
        raise _syntax_error(e, text, filename).with_source(text) from None
    try:
        items = _Builder(filename).transform(tree)
        _check_depth(items)
    except VisitError as e:
        if isinstance(e.orig_exc, SpecError):
            raise e.orig_exc.with_source(text) from None
        raise
    except SpecError as e:
        raise e.with_source(text) from None
    end = text.count("\n") + 1
    return ast.Module(Span(filename, 1, 1, end, 1), tuple(items), text, filename)


def _tokens_before(text: str, pos: int) -> list[Token]:
    """The tokens of ``text[:pos]`` (empty if that prefix does not even lex)."""
    try:
        return list(_lark().lex(text[:pos]))
    except UnexpectedInput:
        return []


def _open_brackets(tokens: list[Token]) -> list[Token]:
    """The brackets still open at the end of ``tokens``, outermost first."""
    stack: list[Token] = []
    for tok in tokens:
        if tok.type == "STRING":
            continue
        if tok in _PAIRS:
            stack.append(tok)
        elif stack and tok == _PAIRS[stack[-1]]:
            stack.pop()
    return stack


def _unclosed(tokens: list[Token]) -> Token | None:
    """The innermost bracket still open at the end of ``tokens``."""
    stack = _open_brackets(tokens)
    return stack[-1] if stack else None


_PAIRS = {"(": ")", "[": "]", "{": "}"}
_CLOSER_TYPES = {"(": "RPAR", "[": "RSQB", "{": "RBRACE"}
#: tokens that may start an operand: a missing ',' shows as one of them, unexpected
_OPERAND_TYPES = ("NAME", "NUMBER", "STRING", "LSQB", "TRUE", "FALSE")


def _syntax_error(e: UnexpectedInput, text: str, filename: str) -> SpecError:
    line, col = getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream
        ch = text[pos] if pos < len(text) else ""
        span = Span(filename, line, col, line, col + 1)
        if ch == '"':
            return SpecSyntaxError("unterminated string", span,
                                   hint='close the string with " on the same line')
        hint = _expected_hint(e.allowed)
        if ch == "." and pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] in "_)"):
            hint = "names have no attributes or methods (a.b) in a spec"
        return SpecSyntaxError(f"unexpected character {ch!r}", span, hint=hint)
    if isinstance(e, UnexpectedEOF) or (
        isinstance(e, UnexpectedToken) and e.token.type == "$END"
    ):
        lines = text.rstrip().split("\n")  # the end: after the last thing written
        last = len(lines)
        span = Span(filename, last, len(lines[-1]) + 1, last, len(lines[-1]) + 2)
        expected = e.expected if isinstance(e, UnexpectedEOF) else e.accepts or e.expected
        hint = _expected_hint(expected)
        opener = _unclosed(_tokens_before(text, len(text)))
        if opener is not None and _CLOSER_TYPES[str(opener)] in expected:
            hint = (f"the '{opener}' at line {opener.line}, column {opener.column} is not "
                    f"closed; add '{_PAIRS[str(opener)]}'")
        return SpecSyntaxError("unexpected end of file", span, hint=hint)
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    span = Span(filename, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + 1)
    expected = set(e.accepts or e.expected)
    what = f"'{tok}'" if tok.type != "NAME" else f"name '{tok}'"
    message = f"unexpected {what}"
    hint = _expected_hint(expected)
    before = _tokens_before(text, tok.start_pos)
    prev = before[-1] if before else None
    opener = _unclosed(before)
    closes = [o for o, c in _PAIRS.items() if c == str(tok)]
    if closes and not any(str(t) == closes[0] for t in _open_brackets(before)):
        hint = f"this '{tok}' closes nothing; remove it"
    elif opener is not None and _CLOSER_TYPES[str(opener)] in expected and (
            tok.line > opener.line or closes):
        hint = (f"the '{opener}' at line {opener.line}, column {opener.column} is not "
                f"closed; add '{_PAIRS[str(opener)]}' before this")
    elif ("COMMA" in expected and tok.type in _OPERAND_TYPES and prev is not None
          and prev.line == tok.line):
        hint = f"a ',' is missing before {what}?"
    # A misspelled keyword reads as a name: suggest the keyword itself.
    keywords = [k for k in KEYWORDS if k.upper() in expected]
    if tok.type == "NAME" and keywords:
        near = suggest(str(tok), keywords)
        if near and "did you mean" in near:
            message, hint = f"unknown keyword '{tok}'", near.split("?")[0] + "?"
    if (prev is not None and prev.type == "NAME" and prev.line == tok.line
            and expected == {"EQUAL"}):
        # `reapet 3 {` reads as the start of `reapet = ...`: the name is the mistake
        near = suggest(str(prev), STATEMENT_KEYWORDS + ITEM_KEYWORDS)
        if near and "did you mean" in near and str(prev) not in KEYWORDS:
            span = Span(filename, prev.line, prev.column, prev.end_line or prev.line,
                        prev.end_column or prev.column + 1)
            return SpecSyntaxError(f"unknown keyword '{prev}'", span,
                                   hint=near.split("?")[0] + "?")
    return SpecSyntaxError(message, span, hint=hint)


@functools.cache
def _operator_terminals() -> frozenset[str]:
    """Terminals of binary operators: listed as one word, 'an operator', in hints."""
    words = {"+", "-", "*", "/", "//", "%", "**", "and", "or", "if"}
    return frozenset({t.name for t in _lark().terminals
                      if t.pattern.type == "str" and t.pattern.value in words} | {"COMP_OP"})


def _expected_hint(expected) -> str | None:
    names = set(expected or ())
    operators = names & _operator_terminals()
    collapse = len(operators) >= 3
    words = _describe(names - operators if collapse else names)
    if len(words) > 12:
        words = words[:12] + ["..."]
    if collapse:
        words.append("an operator")
    if not words:
        return None
    if len(words) == 1:
        return "expected " + words[0]
    return "expected " + ", ".join(words[:-1]) + " or " + words[-1]
