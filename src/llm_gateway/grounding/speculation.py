"""Hedges ("probably", "I think") in an answer whose tool results leave no room for them.

Matched as whole words and phrases, case-insensitively, outside quotes and
code (an answer quoting the user's "it might be down" is not hedging). The
built-in hedges are the ``flag_speculative_language`` check; the configured
``blocked_phrases`` are a check of their own. "could be", "may be" and
"should be" are hedges only when a state follows them ("should be running"),
not in advice ("you should be careful").
"""

from __future__ import annotations

import re
from functools import lru_cache

from llm_gateway.grounding.model import Phrase
from llm_gateway.grounding.states import ANSWER_STATES

HEDGES: tuple[str, ...] = (
    "I think", "probably", "might be", "I assume", "I believe", "likely", "perhaps", "maybe",
    "I guess", "seems to", "seem to", "appears to", "presumably", "I suspect", "possibly",
    "not sure", "I'm not certain",
)  # fmt: skip
_STATE_HEDGES = re.compile(
    r"(?<![A-Za-z0-9])(?:could|may|should|must)[ \t]+(?:still[ \t]+|now[ \t]+|already[ \t]+)?be"
    r"[ \t]+(?:still[ \t]+)?([A-Za-z-]{2,30})(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"[^"\n]{0,500}"|“[^”\n]{0,500}”|```[^`]{0,100000}```|`[^`\n]{0,500}`')


@lru_cache(maxsize=256)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A whole-word, case-insensitive pattern for the phrase (any run of spaces between words)."""
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(
        r"(?<![A-Za-z0-9])" + r"[ \t]+".join(words) + r"(?![A-Za-z0-9])", re.IGNORECASE
    )


def _quoted(answer: str) -> list[tuple[int, int]]:
    return [m.span() for m in _QUOTED.finditer(answer)]


def _outside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return not any(s <= start and end <= e for s, e in spans)


def find_phrases(answer: str, speculative: bool, blocked: tuple[str, ...]) -> list[Phrase]:
    """The built-in hedges (when ``speculative``) and the blocked phrases in the answer."""
    quoted = _quoted(answer)
    found: list[Phrase] = []
    if speculative:
        for hedge in HEDGES:
            for match in phrase_pattern(hedge).finditer(answer):
                if _outside(quoted, *match.span()):
                    found.append(Phrase(match.start(), match.end(), match.group(), "speculative"))
        for match in _STATE_HEDGES.finditer(answer):
            if match[1].lower() in ANSWER_STATES and _outside(quoted, *match.span()):
                found.append(Phrase(match.start(), match.end(), match.group(), "speculative"))
    for phrase in blocked:
        if not phrase.strip():
            continue
        for match in phrase_pattern(phrase).finditer(answer):
            if _outside(quoted, *match.span()):
                found.append(Phrase(match.start(), match.end(), match.group(), "blocked"))
    found.sort(key=lambda p: (p.start, p.source))
    return found
