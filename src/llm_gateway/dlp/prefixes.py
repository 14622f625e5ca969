"""Where a secret may be starting, for a stream that must not release half of one.

A streamed answer is released once scanned, keeping a fixed hold-back of
unreleased characters (:mod:`llm_gateway.dlp.outbound`). A secret longer than
the hold-back whose rule matches only once it is complete (``xai-`` and 80
characters, a PEM key) would leave piece by piece before its rule could see
it. Most secrets announce themselves, though: a literal prefix (``AKIA``,
``ghp_``, ``sk-proj-``) or an armour line (``-----BEGIN RSA PRIVATE KEY``).
While such a start is followed by an unbroken run of token characters up to
the end of what has arrived, or an armour is not yet closed, the release
point stays before it, up to a cap; once the run ends, the rule sees the
whole value and the usual scan decides.

Prefixes are read off the rules' own patterns, so a deployment's custom
rules (the specification's ``sk-...``) are covered as well as the built-in
ones: the literal text a pattern starts with, or each branch of a leading
``(?:a|b)`` group, of at least ``MIN_PREFIX`` characters.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

MIN_PREFIX = 3
# What a token can be made of: the alphabets of keys, base64 and URL-safe base64,
# and the punctuation of connection strings (user:password@host).
TOKEN_CHARACTERS = string.ascii_letters + string.digits + "_-+/=.~%:@"
# Private keys in armour: held from the header until the rule sees the whole key.
_ARMOUR = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY|PuTTY-User-Key-File-")
_ESCAPED_LITERALS = frozenset(".-_/:=@~%+")
_QUANTIFIERS = frozenset("?*{")


def literal_prefixes(pattern: str) -> tuple[str, ...]:
    """The literal texts ``pattern`` can start with, if it starts with literals at all.

    Only the plain forms are read (``\\bghp_...``, ``\\b(?:AKIA|ASIA)...``); a
    pattern starting any other way, or case-insensitive, has no prefix here.
    """
    if pattern.startswith("(?i)"):
        return ()
    rest = pattern.removeprefix(r"\b")
    if rest.startswith("(?:"):
        close = rest.find(")")
        if close < 0 or "(" in rest[3:close]:
            return ()
        branches = [_literal_run(branch) for branch in rest[3:close].split("|")]
        if len(rest) > close + 1 and rest[close + 1] in _QUANTIFIERS:
            return ()  # an optional group: the pattern may start after it
        return tuple(b for b in branches if len(b) >= MIN_PREFIX)
    run = _literal_run(rest)
    return (run,) if len(run) >= MIN_PREFIX else ()


def _literal_run(text: str) -> str:
    """The literal characters ``text`` starts with (a quantified last one excluded)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPED_LITERALS:
            out.append(text[i + 1])
            i += 2
        elif char.isalnum() or char in "_-/:=@~%":
            out.append(char)
            i += 1
        else:
            break
    if out and i < len(text) and text[i] in _QUANTIFIERS:
        out.pop()  # "x?" or "x*": that character may be absent
    return "".join(out)


class SecretStarts:
    """The starts of secrets in a stream's pending text, from a set of rule patterns."""

    def __init__(self, patterns: Iterable[str], *, cap: int) -> None:
        prefixes = sorted({p for pattern in patterns for p in literal_prefixes(pattern)})
        self.prefixes = tuple(prefixes)
        self.cap = cap
        # A prefix may be cut by the end of what has arrived ("sk" of "sk-proj-").
        self._partial = frozenset(p[:n] for p in prefixes for n in range(1, len(p)))
        self._longest = max(map(len, prefixes), default=0)
        self._prefix = (
            re.compile("|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True)))
            if prefixes
            else None
        )

    def hold_before(
        self, pending: str, cut: int, covered: list[tuple[int, int]], *, partial: bool = True
    ) -> int:
        """The release point, moved back before any secret still arriving in ``pending``.

        ``cut`` is where release would stop; ``covered`` the spans of findings
        already made (their starts are held by the scan itself). A start more
        than ``cap`` characters before the end of ``pending`` no longer holds:
        the cap bounds the delay, and what follows is released as scanned.
        ``partial``: also hold back the end of ``pending`` where it could be
        the first characters of a prefix (with no hold-back at all, a stream
        releases each chunk alone, and only a prefix that arrived whole holds).
        """
        floor = max(0, len(pending) - self.cap)
        if cut <= floor:
            return cut
        cut = self._armour(pending, cut, floor, covered)
        if self._prefix is None:
            return cut
        run = len(pending) - len(pending.rstrip(TOKEN_CHARACTERS))
        start = max(len(pending) - run, floor)
        if start >= cut:
            return cut
        found = self._prefix.search(pending, start, len(pending))
        if found is not None and found.start() < cut:
            return found.start()
        for length in range(min(run, self._longest - 1) if partial else 0, 0, -1):
            if pending[-length:] in self._partial:
                return min(cut, len(pending) - length)
        return cut

    @staticmethod
    def may_end_a_run(chunk: str) -> bool:
        """Whether ``chunk`` carries a character no token is made of (a held run may be over)."""
        return bool(chunk.strip(TOKEN_CHARACTERS))

    @staticmethod
    def _armour(pending: str, cut: int, floor: int, covered: list[tuple[int, int]]) -> int:
        for found in _ARMOUR.finditer(pending, floor, cut):
            if not any(s <= found.start() < e for s, e in covered):
                return found.start()
        return cut
