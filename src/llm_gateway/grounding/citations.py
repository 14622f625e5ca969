"""``[tool:<call id or name>]`` citations, and the sentences they cover.

A citation covers the sentence it stands in, or the sentence it trails
("... is paid. [tool:get_invoice]"). Markers are blanked out of the text the
claims are read from (same length, so offsets still point into the answer),
which keeps a cited id such as ``call_ec2_9`` from being taken for a claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"\[tool:[ \t]{0,3}([^\]\s]{1,200})[ \t]{0,3}\]", re.IGNORECASE)
_END = re.compile(r"[.!?]+(?=\s)|\n")


@dataclass(frozen=True, slots=True)
class Citation:
    start: int
    end: int
    ref: str  # the cited call id or tool name, as written


def find_citations(answer: str) -> tuple[str, list[Citation]]:
    """The answer with its markers blanked, and the markers."""
    citations = [Citation(m.start(), m.end(), m[1]) for m in MARKER.finditer(answer)]
    if not citations:
        return answer, []
    parts: list[str] = []
    last = 0
    for citation in citations:
        parts.append(answer[last : citation.start])
        parts.append(" " * (citation.end - citation.start))
        last = citation.end
    parts.append(answer[last:])
    return "".join(parts), citations


def sentences(answer: str, citations: list[Citation]) -> list[tuple[int, int]]:
    """The answer's sentences as spans; a citation right after a sentence's end stays in it."""
    starts = {c.start: c.end for c in citations}
    spans: list[tuple[int, int]] = []
    begin = 0
    for match in _END.finditer(answer):
        end = match.end()
        if end <= begin:
            continue
        # Trailing citations (after whitespace) belong to the sentence they follow.
        probe = end
        while True:
            gap = probe
            while gap < len(answer) and answer[gap] in " \t":
                gap += 1
            if gap in starts:
                probe = starts[gap]
            else:
                break
        end = probe
        spans.append((begin, end))
        begin = end
    if begin < len(answer):
        spans.append((begin, len(answer)))
    return spans


def sentence_of(spans: list[tuple[int, int]], position: int) -> int:
    """The index of the sentence holding ``position``."""
    for index, (start, end) in enumerate(spans):
        if start <= position < end:
            return index
    return max(0, len(spans) - 1)
