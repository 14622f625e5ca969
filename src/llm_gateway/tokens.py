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
_SYMBOLS = [c for c in map(chr, range(128)) if not (c.isalnum() or c.isspace() or c == "_")]
_DROP_SYMBOLS = str.maketrans("", "", "".join(_SYMBOLS))
_SPACE_SYMBOLS = str.maketrans("".join(_SYMBOLS), " " * len(_SYMBOLS))


def estimate_text(text: str) -> int:
    if not text:
        return 0
    by_chars = (len(text) + 3) // 4
    if len(text) > 4096:  # long texts: the character rule alone, to stay cheap
        return by_chars
    if text.isascii():
        # The same count as the pattern below, from C-speed string methods (several
        # times faster): each symbol, plus the words the symbols and spaces separate.
        symbols = len(text) - len(text.translate(_DROP_SYMBOLS))
        return max(by_chars, symbols + len(text.translate(_SPACE_SYMBOLS).split()))
    return max(by_chars, len(_PIECES.findall(text)))


def estimate_prompt(texts: list[str]) -> int:
    return sum(estimate_text(t) + _PER_MESSAGE for t in texts)


def quick_estimate(texts: list[str]) -> int:
    """The character rule alone: for decisions taken before the call, on every request.

    About a microsecond for a 1 KB prompt against ten for :func:`estimate_prompt`;
    it undercounts text dense in symbols or CJK, which accounting corrects later.
    """
    return sum((len(t) + 3) // 4 + _PER_MESSAGE for t in texts)
