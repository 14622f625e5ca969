"""The text the detectors see, and the way back to the text the user sent.

Evasion hides a value from a pattern without hiding it from a reader: a
zero-width space inside an SSN, fullwidth or Arabic-Indic digits, bidi
controls, invisible Unicode "tag" characters carrying ASCII, a card number
typed one digit at a time ("4 1 1 1 - 1 1 1 1 ..."), a Cyrillic letter in a
key prefix. We scan a normalised *view* instead: NFKC, every decimal digit as
ASCII, zero-width and bidi controls removed, tag characters turned back into
the ASCII they encode, lone surrogates replaced, and letters of other scripts
that imitate Latin ones mapped to them (:mod:`.confusables`). A ``View``
keeps the segments that map each view offset back to the original text, so
findings land on the characters the user sent.

Cost: plain ASCII (the common case) is returned as is, with no map. Otherwise
only runs of non-ASCII characters are examined, ASCII stretches being copied
as single segments, so the work is linear in the text and small unless the
text really is full of characters that normalise to something else.

Digits typed apart are handled separately (``join_digit_runs``), on request,
because joining them in the main view would break what their separators mean
elsewhere (IP addresses, dates, versions).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from llm_gateway.dlp import confusables
from llm_gateway.dlp.regex import Pattern

# Zero-width and formatting characters (ZWSP, ZWNJ, ZWJ, word joiner, invisible
# operators, BOM, soft hyphen, Mongolian vowel separator) and bidi controls
# (LRM, RLM, ALM, embeddings, overrides, isolates).
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_REMOVED = frozenset(_INVISIBLE)
_TAGS = "\U000e0000-\U000e007f"
_SURROGATES = "\ud800-\udfff"
# Anything that forces the slow path even when the text is already NFKC: on
# short chunks with Python's re, on whole texts with RE2 (over UTF-8, so no
# surrogates), which scans a megabyte in about a millisecond where re, trying
# the alternation at every character, takes fifty.
_LOOKALIKES = confusables.table()
_TO_LATIN = str.maketrans(_LOOKALIKES)
_SPECIAL = re.compile(
    f"[{_INVISIBLE}{_TAGS}{_SURROGATES}{re.escape(''.join(_LOOKALIKES))}]|(?![0-9])\\d"
)
_SPECIAL_UTF8 = Pattern(
    r"[\x{00AD}\x{061C}\x{180E}\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}"
    r"\x{2066}-\x{2069}\x{FEFF}\x{E0000}-\x{E007F}]|[^\P{Nd}0-9]|" + confusables.character_class()
)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_INVISIBLE_RUN = re.compile(f"[{_INVISIBLE}]+")


@dataclass(frozen=True, slots=True)
class OffsetMap:
    """Segments of a view, each mapped to a range of its parent text.

    A segment whose view and parent lengths are equal maps character for
    character; any other segment (one character that normalised to several,
    say) maps as a whole, so a span touching it covers all of its source.
    Parent characters that no segment covers were removed.
    """

    view_starts: list[int]
    view_lengths: list[int]
    parent_starts: list[int]
    parent_lengths: list[int]

    def start(self, position: int) -> int:
        i = bisect_right(self.view_starts, position) - 1
        if self.view_lengths[i] == self.parent_lengths[i]:
            return self.parent_starts[i] + position - self.view_starts[i]
        return self.parent_starts[i]

    def end(self, position: int) -> int:
        """Parent offset just after view character ``position - 1``."""
        i = bisect_right(self.view_starts, position - 1) - 1
        if self.view_lengths[i] == self.parent_lengths[i]:
            return self.parent_starts[i] + position - self.view_starts[i]
        return self.parent_starts[i] + self.parent_lengths[i]


@dataclass(frozen=True, slots=True)
class View:
    """A text to scan, and how to map its offsets back to the original text."""

    text: str
    mapping: OffsetMap | None = None  # None: offsets are the parent's offsets
    parent: View | None = None  # None: the parent is the original text

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if self.mapping is not None and end > start:
            start, end = self.mapping.start(start), self.mapping.end(end)
        if self.parent is not None:
            return self.parent.original_span(start, end)
        return start, end


class _Builder:
    """Accumulates view text and segments, merging character-for-character neighbours."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.view_starts: list[int] = []
        self.view_lengths: list[int] = []
        self.parent_starts: list[int] = []
        self.parent_lengths: list[int] = []

    def put(self, parent_start: int, parent_length: int, out: str) -> None:
        size = len(out)
        if size == 0:
            return
        self.parts.append(out)
        if size == parent_length and self.view_starts:
            last = len(self.view_starts) - 1
            if (
                self.view_lengths[last] == self.parent_lengths[last]
                and self.parent_starts[last] + self.parent_lengths[last] == parent_start
            ):
                self.view_lengths[last] += size
                self.parent_lengths[last] += size
                self.length += size
                return
        self.view_starts.append(self.length)
        self.view_lengths.append(size)
        self.parent_starts.append(parent_start)
        self.parent_lengths.append(parent_length)
        self.length += size

    def put_digits(self, parent_start: int, run: str) -> None:
        """The ASCII digits of ``run``, each its own segment (they are not contiguous)."""
        positions = [parent_start + i for i, char in enumerate(run) if "0" <= char <= "9"]
        count = len(positions)
        self.parts.append("".join(run[p - parent_start] for p in positions))
        self.view_starts.extend(range(self.length, self.length + count))
        self.view_lengths.extend([1] * count)
        self.parent_starts.extend(positions)
        self.parent_lengths.extend([1] * count)
        self.length += count

    def build(self, parent: View | None = None) -> View:
        mapping = OffsetMap(
            self.view_starts, self.view_lengths, self.parent_starts, self.parent_lengths
        )
        return View("".join(self.parts), mapping, parent)


def normalise(text: str) -> View:
    """The view of ``text`` the detectors scan; identity (no map) when nothing changes."""
    if text.isascii():
        return View(text)
    if _stable(text):
        return View(text)
    stripped = _INVISIBLE_RUN.sub("", text)  # several times faster than str.translate here
    if _stable(stripped):
        return _without_invisible(text, stripped)
    builder = _Builder()
    position = 0
    for run in _NON_ASCII_RUN.finditer(text):
        start, end = run.span()
        builder.put(position, start - position, text[position:start])
        chunk = run.group()
        if _SPECIAL.search(chunk) is None and unicodedata.is_normalized("NFKC", chunk):
            builder.put(start, end - start, chunk)
        else:
            for offset, char in enumerate(chunk, start):
                builder.put(offset, 1, _normalise_char(char))
        position = end
    builder.put(position, len(text) - position, text[position:])
    return builder.build()


def _stable(text: str) -> bool:
    """Nothing to remove or replace, and already NFKC: the text is its own view."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return _SPECIAL_UTF8.search(data, 0) is None and unicodedata.is_normalized("NFKC", text)


def _without_invisible(text: str, stripped: str) -> View:
    """The usual evasion, zero-width or bidi characters and nothing else: one segment per gap."""
    view_starts: list[int] = []
    parent_starts: list[int] = []
    lengths: list[int] = []
    kept = 0
    position = 0
    for run in _INVISIBLE_RUN.finditer(text):
        if run.start() > position:
            view_starts.append(kept)
            parent_starts.append(position)
            lengths.append(run.start() - position)
            kept += run.start() - position
        position = run.end()
    if position < len(text):
        view_starts.append(kept)
        parent_starts.append(position)
        lengths.append(len(text) - position)
    return View(stripped, OffsetMap(view_starts, lengths, parent_starts, lengths))


def _normalise_char(char: str) -> str:
    if char in _REMOVED:
        return ""
    code = ord(char)
    if 0xE0000 <= code <= 0xE007F:
        # Tag characters mirror ASCII 0x20-0x7E; the rest (begin/cancel) carry nothing.
        return chr(code - 0xE0000) if 0xE0020 <= code <= 0xE007E else ""
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return chr(48 + digit)
    return unicodedata.normalize("NFKC", char).translate(_TO_LATIN)


def join_digit_runs(
    view: View, runs: Iterable[tuple[int, int]]
) -> tuple[View, list[tuple[int, int]]]:
    """A view of ``view.text`` with the separators inside each run removed.

    ``runs`` are character spans of ``view.text``, in order, each a sequence
    of digits separated by spaces, dots or dashes, as typed to dodge a pattern.
    Returns the new view and where each run's joined digits sit in it.
    """
    text = view.text
    builder = _Builder()
    joined: list[tuple[int, int]] = []
    position = 0
    for start, end in runs:
        builder.put(position, start - position, text[position:start])
        run_start = builder.length
        builder.put_digits(start, text[start:end])
        joined.append((run_start, builder.length))
        position = end
    builder.put(position, len(text) - position, text[position:])
    return builder.build(view), joined


def char_offsets(data: bytes, byte_offsets: Iterable[int]) -> dict[int, int]:
    """Character offsets of the given byte offsets of UTF-8 ``data``, in one pass."""
    result: dict[int, int] = {}
    previous_byte = 0
    previous_char = 0
    for offset in sorted(set(byte_offsets)):
        previous_char += len(data[previous_byte:offset].decode("utf-8"))
        previous_byte = offset
        result[offset] = previous_char
    return result
