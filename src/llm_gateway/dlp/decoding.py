"""Encoded text inside a text: base64, hex, URL and HTML escapes, ``\\uXXXX`` escapes.

A secret that is base64- or hex-encoded, percent-encoded or written as
escapes passes every pattern while staying one decode away from a reader (or
a model, which decodes base64 happily). So the engine also scans what such
spans decode to, and a finding in a decoded text covers the whole encoded
span it came from.

Only decodings that give text are kept: strict UTF-8 with at least
``PRINTABLE`` of its characters printable, so hashes, commit ids, UUIDs and
base64 images (which decode to bytes) cost a failed decode and nothing more.
The work is bounded three ways: a span longer than ``MAX_SPAN`` characters
is not decoded, a scan decodes at most ``MAX_DECODED`` characters in all,
and decoded text is itself decoded at most ``MAX_DEPTH`` layers deep.
Candidates are found in one RE2 pass, linear in the text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from llm_gateway.dlp.regex import Pattern

MIN_ENCODED = 20  # characters of base64 or hex before a run is worth decoding
MAX_SPAN = 16_384
MAX_DECODED = 65_536
MAX_DEPTH = 2
PRINTABLE = 0.9

# What may start an encoding, for the engine's prefilter: a long base64/hex run,
# a percent escape, an HTML entity, a backslash escape.
ENCODED = (
    r"[A-Za-z0-9+/_\-]{20,}|%[0-9A-Fa-f]{2}|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});"
    r"|\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|U[0-9A-Fa-f]{8})"
)
_CANDIDATES = Pattern(
    r"[A-Za-z0-9+/_\-]{20,}={0,2}"
    r"|(?:[^\s%\"'<>]*%[0-9A-Fa-f]{2})+[^\s%\"'<>]*"
    r"|(?:[^\s&<>\"']*&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});)+[^\s&<>\"']*"
    r"|(?:[^\s\\\"']*\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|U[0-9A-Fa-f]{8}))+[^\s\\\"']*"
)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_BASE64URL = re.compile(r"[A-Za-z0-9_\-]+={0,2}")


@dataclass(slots=True)
class Budget:
    """What is left of a scan's decoding allowance, in characters."""

    chars: int = MAX_DECODED


def encoded_spans(text: str, budget: Budget) -> Iterator[tuple[int, int, str]]:
    """``(start, end, decoded)`` for each span of ``text`` that decodes to text.

    Offsets are characters of ``text``; the budget shrinks by what is decoded.
    """
    data = text.encode("utf-8")
    ascii_only = len(data) == len(text)
    position = 0
    seen_bytes = seen_chars = 0  # a running byte -> character offset, for non-ASCII text
    while budget.chars > 0 and (found := _CANDIDATES.search(data, position)) is not None:
        start, end = found[0], found[1]
        position = max(end, start + 1)
        if end - start > MAX_SPAN:
            continue
        raw = data[start:end].decode("utf-8", "replace")
        decoded = decode(raw)
        if decoded is None:
            continue
        budget.chars -= len(decoded)
        if ascii_only:
            yield start, end, decoded
        else:
            seen_chars += len(data[seen_bytes:start].decode("utf-8", "replace"))
            seen_bytes = start
            yield seen_chars, seen_chars + len(raw), decoded


def decode(raw: str) -> str | None:
    """What ``raw`` decodes to, if it is an encoding of text (and not the text itself)."""
    if "%" in raw:
        return _text_changed(raw, unquote(raw, errors="strict") if _valid_percent(raw) else raw)
    if "&" in raw and ";" in raw:
        return _text_changed(raw, html.unescape(raw))
    if "\\" in raw:
        try:
            decoded = codecs.decode(raw, "unicode_escape")
        except (UnicodeDecodeError, ValueError):
            return None
        return _text_changed(raw, decoded)
    if len(raw) < MIN_ENCODED:
        return None
    if _HEX.fullmatch(raw):
        return _printable(bytes.fromhex(raw))
    return _from_base64(raw)


def _from_base64(raw: str) -> str | None:
    body = raw.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if _BASE64.fullmatch(raw):
            return _printable(base64.b64decode(padded, validate=True))
        if _BASE64URL.fullmatch(raw):
            return _printable(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None
    return None


def _valid_percent(raw: str) -> bool:
    try:
        unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    shown = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return text if shown >= PRINTABLE * len(text) else None


def _text_changed(raw: str, decoded: str) -> str | None:
    return decoded if decoded != raw and decoded else None
