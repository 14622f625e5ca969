"""Offline token estimates, for when a provider does not report usage.

Real tokenizers need vocabulary files that cannot be fetched at run time
here, and differ per provider anyway. Byte-pair tokenizers for English average
about four characters per token; words, punctuation and non-ASCII text push
that down, so the estimate counts whichever is larger: a quarter of the
characters or the words and symbols. Estimates are always marked as such.
"""

from __future__ import annotations

import re

_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_PER_MESSAGE = 4  # role markers and separators most chat templates add


def estimate_text(text: str) -> int:
    if not text:
        return 0
    by_chars = (len(text) + 3) // 4
    if len(text) > 4096:  # long texts: the character rule alone, to stay cheap
        return by_chars
    return max(by_chars, len(_PIECES.findall(text)))


def estimate_prompt(texts: list[str]) -> int:
    return sum(estimate_text(t) + _PER_MESSAGE for t in texts)
