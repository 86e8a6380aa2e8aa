"""User-facing errors: every mistake in a spec is a :class:`SpecError`.

A SpecError knows where it is (file, line, column, and the end of the offending
span), and prints like a compiler diagnostic::

    quickstart.spec:7:9: error: unknown op 'lineer'
        7 |   h = lineer(h, width)
          |       ^^^^^^
    hint: did you mean 'linear'?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A source range: 1-based line and column, end exclusive in column."""

    filename: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}"


_MAX_SHOWN = 100  # longest source excerpt shown under an error


class SpecError(Exception):
    """A mistake in a spec, located at ``filename:line:column``."""

    kind = "error"

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        *,
        hint: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source

    @property
    def filename(self) -> str | None:
        return self.span.filename if self.span else None

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def with_source(self, source: str) -> SpecError:
        if self.source is None:
            self.source = source
        return self

    def source_line(self) -> str | None:
        if self.source is None or self.span is None:
            return None
        lines = self.source.split("\n")  # as the parser counts lines: other breaks are not
        if 1 <= self.span.line <= len(lines):
            return lines[self.span.line - 1]
        return None

    def format(self) -> str:
        head = f"{self.kind}: {self.message}"
        if self.span is not None:
            head = f"{self.span}: {head}"
        out = [head]
        text = self.source_line()
        if text is not None and self.span is not None:
            # one column per character, as the parser counts them: tabs and control
            # characters show as one space, so the caret stays under the mistake
            text = "".join(c if c.isprintable() else " " for c in text.expandtabs(1))
            start = max(self.span.column - 1, 0)
            if len(text) > _MAX_SHOWN:  # show a window around the caret
                lo = max(0, start - _MAX_SHOWN // 2)
                text = text[lo:lo + _MAX_SHOWN]
                start -= lo
            gutter = f"{self.span.line:>5} | "
            out.append(gutter + text)
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            else:
                width = 1
            width = max(1, min(width, max(len(text) - start, 1)))
            out.append(" " * (len(gutter) - 2) + "| " + " " * start + "^" * width)
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


class SpecSyntaxError(SpecError):
    """The text does not follow the grammar."""


class SpecNameError(SpecError):
    """An unknown op, keyword, symbol or name."""


class SpecTypeError(SpecError):
    """A value of the wrong kind, or a missing / surplus argument."""


class SpecValueError(SpecError):
    """A value out of its allowed range (empty choice, inverted bounds, p >= 1, ...)."""


class SpecLimitError(SpecError):
    """A documented limit was exceeded (see ``autoarch.compiler.limits``)."""


class CommandError(SpecError):
    """A problem with a command-line argument, a file or a database, not located in a spec.

    It prints as one line saying what is wrong and what to do::

        error: runs.db is not an autoarch history database; give --db a new file name
    """

    def format(self) -> str:
        if self.span is not None:  # located after all (in a spec): the usual diagnostic
            return super().format()
        text = f"{self.kind}: {self.message}"
        if self.hint:
            text += f"; {self.hint}"
        return " ".join(text.split("\n"))


class SpecWarning(SpecError):
    """Not a mistake, but worth a look: the spec loads and its meaning is unchanged.

    Warnings are collected on ``Spec.warnings`` (never raised by autoarch) and print
    like errors, located, with ``warning:`` in place of ``error:``.
    """

    kind = "warning"


class CandidateError(SpecError):
    """A particular candidate is invalid; the space itself may be fine."""


class ShapeError(CandidateError):
    """Shapes do not fit together for this candidate."""


class RequireError(CandidateError):
    """A ``require`` statement does not hold for this candidate."""


class AssignmentError(SpecError):
    """A choice assignment given by the user does not fit the space.

    Located, it shows the decision in the spec; unlocated (a name the space does not
    have), it is about the names given, and prints on one line as a CommandError does.
    """

    def format(self) -> str:
        if self.span is None:
            return CommandError.format(self)
        return super().format()


def closest(word: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The options closest to ``word`` (case-insensitive), best first."""
    opts = sorted(set(options))
    lower = {o.lower(): o for o in opts}
    found = difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[f] for f in found]


def suggest(word: str, options: Iterable[str], *, listing: str | None = None) -> str | None:
    """A hint naming the closest options to ``word``, and optionally the valid set."""
    opts = sorted(set(options))
    near = closest(word, opts)
    parts = []
    if near:
        parts.append("did you mean " + " or ".join(f"'{c}'" for c in near) + "?")
    if listing is not None or (not near and len(opts) <= 12):
        parts.append(f"{listing or 'expected one of'}: " + ", ".join(opts))
    return " ".join(parts) or None
