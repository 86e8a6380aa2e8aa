"""Warnings about spec text that parses, but may not read the way it runs.

Bidirectional control characters are invisible, and editors and terminals reorder
the text around them: a comment or a string can seem to hold code it does not, or
hide code that runs ("Trojan Source", CVE-2021-42574). Each line holding one gets a
located warning; the spec itself is unchanged.
"""

from __future__ import annotations

import unicodedata

from .errors import Span, SpecWarning

#: the controls that reorder text: embeddings, overrides and isolates, and the marks
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]    # LRE, RLE, PDF, LRO, RLO
    + [chr(c) for c in range(0x2066, 0x206A)]  # LRI, RLI, FSI, PDI
    + ["\u200e", "\u200f", "\u061c"]           # LRM, RLM, ALM
)
#: most warnings listed one by one; one more sums up the rest
MAX_LISTED = 10


def bidi_controls(text: str, filename: str) -> list[SpecWarning]:
    """A warning at the first bidirectional control of each line that holds one.

    Lines and columns count as the parser counts them (``text`` split at ``\\n``,
    one column per character).
    """
    found: list[SpecWarning] = []
    if not BIDI_CONTROLS.intersection(text):
        return found
    lines = 0
    for number, line in enumerate(text.split("\n"), start=1):
        col = next((i for i, c in enumerate(line) if c in BIDI_CONTROLS), None)
        if col is None:
            continue
        lines += 1
        if len(found) < MAX_LISTED:
            c = line[col]
            found.append(SpecWarning(
                f"bidirectional control character U+{ord(c):04X} ({unicodedata.name(c)}) "
                f"in {_place(line, col)}: the line may display in another order than it "
                "is read", Span(filename, number, col + 1, number, col + 2),
                hint="delete it (it is invisible) unless the text needs it", source=text))
    if lines > MAX_LISTED:
        found.append(SpecWarning(f"{lines:,} lines in all hold bidirectional control "
                                 f"characters; the first {MAX_LISTED} are shown above"))
    return found


def _place(line: str, col: int) -> str:
    """Where column ``col`` of ``line`` stands: in a comment, a string, or the code."""
    in_string, i = False, 0
    while i < col:
        c = line[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "#":
            return "a comment"
        i += 1
    return "a string" if in_string else "the code"
