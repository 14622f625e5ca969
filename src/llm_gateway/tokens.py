"""Offline token estimates, for when a provider does not report usage.

Real tokenizers need vocabulary files that cannot be fetched at run time
here, and differ per provider anyway. Byte-pair tokenizers for English average
about four characters per token; words, punctuation and text in scripts
written without spaces push that down, so the estimate counts whichever is
larger: a quarter of the characters, or the words, symbols and CJK characters.
Estimates are always marked as such.
"""

from __future__ import annotations

import re

# Han, kana and Hangul are written without spaces and tokenise to about one
# token per character, so each counts as a piece on its own.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECES = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]")
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
