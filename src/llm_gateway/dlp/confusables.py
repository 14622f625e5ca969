"""Letters from other scripts that look like Latin ones, mapped to the Latin letter.

``AKIA`` typed with Cyrillic letters (U+0410 U+041A U+0406 U+0410), ``ghp_``
with a Cyrillic er (U+0440), ``sk-`` with a Cyrillic dze (U+0455): a reader
sees the key prefix, a pattern does not. NFKC leaves these
letters alone (they are letters of their own script, not compatibility
forms), so the normalised view (:mod:`.normalize`) maps them too, using the
Unicode consortium's confusables data (UTS #39) as packaged by
``confusable-homoglyphs`` (pinned), not a hand-made list.

Only single characters outside ASCII whose confusable is one ASCII letter or
digit are mapped. UTS #39 maps every character to a *prototype* of its class,
and the prototype of the I/l/1 class is ``l``; an upper-case letter of that
class (Cyrillic U+0406, Greek U+0399) is mapped to ``I`` instead, since that is
what it imitates in a key prefix. Other case differences keep the case of
the source letter.

The table is built once per process from the package's JSON (a few tens of
milliseconds) and never changes afterwards.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def table() -> dict[str, str]:
    """Each confusable character outside ASCII and the ASCII letter or digit it imitates."""
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(raw)
    mapped: dict[str, str] = {}
    for source, homoglyphs in data.items():
        if len(source) != 1 or source.isascii():
            continue
        target = next(
            (
                h["c"]
                for h in homoglyphs
                if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()
            ),
            None,
        )
        if target is None:
            continue
        if source.isupper() and target.islower():
            target = "I" if target == "l" else target.upper()
        elif source.islower() and target.isupper():
            target = target.lower()
        mapped[source] = target
    return mapped


def character_class() -> str:
    """An RE2 character class of every mapped character, for a cheap "is there any" probe."""
    return "[" + "".join(f"\\x{{{ord(c):04X}}}" for c in sorted(table())) + "]"
