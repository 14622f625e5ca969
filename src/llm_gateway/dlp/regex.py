"""RE2 patterns, compiled once, with errors a rule author can act on.

Every DLP pattern is RE2 syntax because RE2 matches in time linear in the
text, whatever the pattern: no catastrophic backtracking, so no crafted
prompt can stall the gateway. The price is no lookaround and no
back-references. A rule that needs context around the sensitive part matches
the context too and marks the sensitive part with a group named ``value``
(``password\\s*=\\s*(?P<value>\\S+)``); the finding then covers only that group.

This module is the only place that talks to the untyped ``re2`` binding
(besides the Set in ``backends``): callers get typed spans over UTF-8 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import re2

VALUE_GROUP = "value"

_UNSUPPORTED = (
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
)
_BACKREFERENCE = re.compile(r"invalid escape sequence: (\\[1-9k])")
_LINEAR = "RE2 matches in linear time and has no"


class PatternError(ValueError):
    """A pattern RE2 cannot compile, or one we refuse; the message says what to change."""


def options() -> Any:
    """Options shared by every DLP pattern: UTF-8, no logging to stderr, room for big sets."""
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = 64 << 20
    return opts


def explain(pattern: str, error: str) -> str:
    """Turn RE2's terse compile error into a sentence naming the construct and the fix."""
    for prefix, construct in _UNSUPPORTED:
        if error.endswith(f"invalid perl operator: {prefix}") or (
            "invalid perl operator" in error and prefix in pattern
        ):
            return (
                f"{construct} is not supported: {_LINEAR} lookaround; match the context "
                f"as part of the pattern and capture the sensitive part as (?P<value>...)"
            )
    backref = _BACKREFERENCE.search(error)
    if backref is not None or "(?P=" in pattern:
        found = backref.group(1) if backref is not None else "(?P=name)"
        return f"back-reference {found} is not supported: {_LINEAR} back-references"
    return f"invalid RE2 pattern: {error}"


def _compile(pattern: str, *, captures: bool = True) -> Any:
    opts = options()
    opts.never_capture = not captures
    try:
        return re2.compile(pattern, opts)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else str(exc)
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise PatternError(explain(pattern, message)) from None


class Pattern:
    """One compiled rule pattern; ``search`` answers in byte offsets of the UTF-8 text.

    ``search`` returns the match's span and the span of the ``value`` group (or
    of the whole match when the pattern has no such group or it did not take
    part in the match). A pattern without a ``value`` group is compiled
    without captures, so RE2 can answer from its DFA alone.
    """

    __slots__ = ("_match", "_value", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        probe = _compile(source)
        self._value: int = probe.groupindex.get(VALUE_GROUP, 0)
        if probe.search(b"") is not None:
            raise PatternError("pattern matches the empty string, so it would match everywhere")
        compiled = probe if self._value else _compile(source, captures=False)
        self._match = _matcher(compiled)

    def search(self, data: bytes, pos: int) -> tuple[int, int, int, int] | None:
        """``(start, end, value_start, value_end)`` of the leftmost match at or after ``pos``."""
        spans: list[tuple[int, int]] = self._match(data, pos)
        start, end = spans[0]
        if start < 0:
            return None
        if self._value:
            value_start, value_end = spans[self._value]
            if value_start >= 0:
                return start, end, value_start, value_end
        return start, end, start, end


_Matcher = Callable[[bytes, int], list[tuple[int, int]]]


def _matcher(compiled: Any) -> _Matcher:
    """Spans of every group of the leftmost match at or after a byte position.

    The binding's generator-based ``search`` costs more than the match itself
    on short hits, so we call the underlying RE2 object when it is there (the
    binding is pinned), and fall back to the public API otherwise.
    """
    raw = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if raw is not None and anchor is not None:

        def raw_match(data: bytes, pos: int) -> list[tuple[int, int]]:
            spans: list[tuple[int, int]] = raw.Match(anchor, data, pos, len(data))
            return spans

        return raw_match
    groups: int = compiled.groups

    def public_match(data: bytes, pos: int) -> list[tuple[int, int]]:
        match = compiled.search(data, pos)
        if match is None:
            return [(-1, -1)]
        return [match.span(i) for i in range(groups + 1)]

    return public_match
