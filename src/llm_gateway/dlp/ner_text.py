"""What the NER model is shown of a text: code hidden, shouted names spoken normally.

Both rewrites keep the text's length, character for character, so that every
offset the model reports in the rewritten text is an offset into the original.

Code: a small model tags identifiers as people and places (``Path``,
``jordan_client``, ``getUserName``), and redacting them breaks the code. So
code spans become spaces before the model sees them:

* fenced blocks (```` ``` ```` or ``~~~``; an unclosed fence runs to the end
  of the text, as Markdown renders it), the fences included;
* inline code (`` `like this` ``);
* identifier-like tokens: ``snake_case``, ``camelCase`` (a lower-case start,
  so ``McDonald`` and ``DeShawn`` stay), ``dotted.paths`` (two segments of
  two or more characters, so ``J.R.R.`` and ``e.g.`` stay), calls (``name(``
  with no space before the parenthesis, their arguments too when they close
  on the same line: ``greet(Jordan)``, ``class Victoria(Base)``),
  ``key=value`` tokens and ``Scope::names``.

A name inside a code span is therefore not found by NER (the rules still
scan every character, and a string in code is not masked unless it is inside
backticks or a fenced block): the price of not redacting identifiers. A
caller who wraps a name in backticks hides it from NER; where that matters,
the policy should not rely on NER alone.

ALL-CAPS (``DLP_NER_ALL_CAPS``, off by default): the small model barely tells
``MARIA GARCIA`` from a shouted word, so with the setting on, every
all-capital word of two or more letters is title-cased (``Maria Garcia``)
before the model sees it; a word whose case mapping would change its length
(``DİYARBAKIR``: ``"İ".lower()`` is two characters) is left as it is. Shouted
common words (``PLEASE SEND``) are then read as capitalised words, which
costs some false positives: hence off by default.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n?", re.MULTILINE)
_INLINE = re.compile(r"`[^`\n]+`")
_CAPS_WORD = re.compile(r"\b[^\W\d_]{2,}\b")
_IDENTIFIER = re.compile(
    r"\b\w+_\w+\b"  # snake_case, _private, CONSTANT_NAME
    r"|\b[a-z][a-z0-9]*[A-Z]\w*"  # camelCase
    r"|\b[A-Za-z_]\w+(?:\.[A-Za-z_]\w+)+\b"  # dotted.paths
    r"|[\w.]+\([^()\n]{0,200}\)"  # call(args), on one line
    r"|[\w.]+\("  # call(
    r"|[\w.\-]*\w=[^\s,;]*"  # key=value, --flag=value
    r"|\w*(?:::\w+)+"  # Scope::name
)


def mask_code(text: str) -> str:
    """``text`` with its code spans replaced by spaces (line breaks kept), same length."""
    if not text:
        return text
    chars = list(text)
    for start, end in _code_spans(text):
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def title_case_caps(text: str) -> str:
    """``text`` with every ALL-CAPS word of two or more letters title-cased, same length."""

    def title(match: re.Match[str]) -> str:
        word = match.group()
        if not word.isupper():
            return word
        titled = word[0] + word[1:].lower()
        return titled if len(titled) == len(word) else word

    return _CAPS_WORD.sub(title, text)


def prepare(text: str, *, all_caps: bool = False) -> str:
    """What the model is shown of ``text``: code masked, and ALL-CAPS title-cased if asked."""
    shown = mask_code(text)
    return title_case_caps(shown) if all_caps else shown


def _code_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    at = 0
    fenced_text = []  # the text outside fenced blocks, as (start, end) stretches
    while True:
        opening = _FENCE.search(text, at)
        if opening is None:
            fenced_text.append((at, len(text)))
            break
        fenced_text.append((at, opening.start()))
        marker = opening.group(1)
        closing = re.compile(
            rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$", re.MULTILINE
        ).search(text, opening.end())
        end = closing.end() if closing is not None else len(text)
        spans.append((opening.start(), end))
        at = end
        if at >= len(text):
            break
    for start, end in fenced_text:
        spans += [m.span() for m in _INLINE.finditer(text, start, end)]
        spans += [m.span() for m in _IDENTIFIER.finditer(text, start, end)]
    return spans
