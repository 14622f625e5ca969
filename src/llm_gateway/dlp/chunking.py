"""Cut a long text into bounded pieces at natural breaks, for the NER model.

Why chunks: spaCy's memory and time per document grow with its length, and a
worker process can only give up on a scan between two pieces of work. Pieces
of a few thousand characters keep both bounded: the worker checks its time
budget before each piece, so an abandoned scan stops within one piece's time.

Why natural breaks: a name cut in half is a name missed. A cut goes, in order
of preference, after a blank line, a line break, a sentence end, or a space in
the last fifth of the piece; only a text with no whitespace there is cut hard.
"""

from __future__ import annotations

import re

# Earlier alternatives are better cut points; each match ends where the cut goes.
_BREAKS = (
    re.compile(r"\n[ \t]*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?][\"')\]]*\s"),
    re.compile(r"\s"),
)
_SEARCH_FRACTION = 5  # look for a break in the last 1/5 of a piece


def chunk_spans(text: str, size: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets of consecutive pieces covering ``text``.

    Every piece is at most ``size`` characters long and the pieces cover the
    text exactly once, in order, so offsets found in a piece map back by
    adding its start.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > size:
        end = cut_at_break(text, start, start + size)
        spans.append((start, end))
        start = end
    if start < len(text) or not spans:
        spans.append((start, len(text)))
    return spans


def cut_at_break(text: str, start: int, limit: int) -> int:
    """The best place to end a piece that begins at ``start``: in ``(start, limit]``.

    The end of the text when it ends by ``limit``; ``limit`` itself when no
    break is near it.
    """
    if limit >= len(text):
        return len(text)
    window_start = max(start + 1, limit - (limit - start) // _SEARCH_FRACTION)
    for pattern in _BREAKS:
        last = None
        for match in pattern.finditer(text, window_start, limit):
            last = match
        if last is not None:
            return last.end()
    return limit
