"""De-anonymising the model's answer for principals allowed to see the real values.

Tokens (``<PERSON_1>``) are found with one linear-time regex over the token
shape and looked up in the conversation's mapping; anything not in the mapping
(an unknown number, a ``<SSN_REDACTED>`` marker, HTML) is left exactly as it
was. ``json_escape=True`` is for text that is itself JSON (a serialised body, a
tool call's argument deltas): values are inserted JSON-escaped, so a value with
a quote or a backslash keeps the document valid. A token is plain ASCII that
JSON never escapes, so it is found in JSON text as it is.

In streams a token may be split across chunks (``<PER`` + ``SON_1>``).
:class:`StreamRestorer` holds back only a tail that is a proper prefix of a
token in the mapping, so the added hold-back is at most ``len(longest token) -
1`` characters (tokens are ``<``, a label of at most 40 characters, ``_``, a
number, ``>``: under 50 characters for any realistic conversation), and text
that cannot start a known token is released at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import orjson

# A superset of the tokens' shape (``<LABEL_n>``, see vault.format_token); the
# mapping decides. No nested quantifiers: linear time on any input.
_TOKEN_SHAPE = re.compile(r"<[A-Z][A-Z0-9_]*>")


def _json_escaped(mapping: Mapping[str, str]) -> dict[str, str]:
    return {token: orjson.dumps(value).decode()[1:-1] for token, value in mapping.items()}


def _substitute(text: str, lookup: Mapping[str, str]) -> str:
    if not lookup or "<" not in text:
        return text
    get = lookup.get

    def one(match: re.Match[str]) -> str:
        token = match.group()
        return get(token, token)

    return _TOKEN_SHAPE.sub(one, text)


def restore(text: str, mapping: Mapping[str, str], *, json_escape: bool = False) -> str:
    """``text`` with every token of ``mapping`` (token -> value) replaced by its value."""
    return _substitute(text, _json_escaped(mapping) if json_escape else mapping)


class StreamRestorer:
    """Restores tokens in a text stream whose chunks may split a token anywhere.

    Use one per text channel (a choice's content, one tool call's arguments),
    :meth:`feed` every chunk, and :meth:`flush` at the channel's end.
    """

    def __init__(self, mapping: Mapping[str, str], *, json_escape: bool = False) -> None:
        self._lookup = _json_escaped(mapping) if json_escape else dict(mapping)
        self._prefixes = frozenset(t[:i] for t in self._lookup for i in range(1, len(t)))
        self.max_hold = max(map(len, self._lookup), default=1) - 1
        self._pending = ""

    @property
    def held(self) -> int:
        """How many characters are being held back right now."""
        return len(self._pending)

    def feed(self, chunk: str) -> str:
        """The restorable part of everything fed so far that was not yet returned."""
        buffer = self._pending + chunk if self._pending else chunk
        if not self._prefixes:
            return buffer
        # A token holds "<" only at its start, so a token left unfinished at the end of
        # the buffer starts at the last "<" of the buffer's last max_hold characters.
        cut = buffer.rfind("<", max(0, len(buffer) - self.max_hold))
        if cut >= 0 and buffer[cut:] in self._prefixes:
            self._pending = buffer[cut:]
            buffer = buffer[:cut]
        else:
            self._pending = ""
        return _substitute(buffer, self._lookup)

    def flush(self) -> str:
        """What is still held back: the stream ended, so it cannot become a token."""
        rest, self._pending = self._pending, ""
        return rest


def tokens_in(texts: Iterable[str]) -> set[str]:
    """The token-shaped strings in ``texts``: what a restore needs from the vault."""
    return {token for text in texts for token in _TOKEN_SHAPE.findall(text)}
