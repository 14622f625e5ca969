"""What a challenge shows, and the exact phrase that confirms it.

The **scope** of a tool call is the longest list of plain values (strings or
numbers) anywhere in its arguments: the 7 instance ids of
``{"instance_ids": [...]}``. The phrase is ``confirm <verb> <count> <noun>``:

- the **verb** is the word the rule matched (``terminate``);
- the **count** is the scope's length (left out when there is no list);
- the **noun** comes from the scope's key (``instance_ids`` -> instances),
  else from the tool's name without the verb (``terminate_instances`` ->
  instances), else "items"; singular for one.

So a ``terminate_instances`` call for 7 ids is confirmed by ``confirm
terminate 7 instances``; a prompt with no tool call yet by ``confirm
delete``. A reply is compared after :func:`normalised`: case, spacing and the
punctuation around it do not matter; the words and the count must be exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from llm_gateway.hitl.checkpoints import words_of

_ID_SUFFIX = re.compile(r"(?:[ _-]?(?:ids?|names?|list|keys?|arns?))$", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_EDGES = "\"'`.,;:!?()[]{}<> \t\r\n"


@dataclass(frozen=True, slots=True)
class Scope:
    """The objects a tool call acts on, and the argument they were found under."""

    items: tuple[str, ...]
    key: str | None

    def shown(self, most: int = 3) -> list[str]:
        """The first ``most`` items, then "... [N more]" (the challenge's summary)."""
        if len(self.items) <= most:
            return list(self.items)
        return [*self.items[:most], f"... [{len(self.items) - most} more]"]


def scope_of(arguments: str) -> Scope:
    """The longest list of plain values in the arguments (JSON text); empty if none."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return Scope((), None)
    best: tuple[tuple[str, ...], str | None] = ((), None)
    for key, values in _lists(parsed, None):
        if len(values) > len(best[0]):
            best = (values, key)
    return Scope(*best)


def _lists(value: Any, key: str | None) -> list[tuple[str | None, tuple[str, ...]]]:
    found: list[tuple[str | None, tuple[str, ...]]] = []
    if isinstance(value, dict):
        for name, inner in value.items():
            found += _lists(inner, str(name))
    elif isinstance(value, list):
        plain = [v for v in value if isinstance(v, str | int | float) and not isinstance(v, bool)]
        if plain and len(plain) == len(value):
            found.append((key, tuple(str(v) for v in plain)))
        for inner in value:
            found += _lists(inner, key)
    return found


def confirmation_phrase(verb: str, scope: Scope, tool_name: str | None) -> str:
    """``confirm <verb> [<count> <noun>]``, as the module's docstring derives it."""
    if not scope.items:
        return f"confirm {verb}"
    count = len(scope.items)
    return f"confirm {verb} {count} {_noun(verb, scope.key, tool_name, count)}"


def _noun(verb: str, key: str | None, tool_name: str | None, count: int) -> str:
    base = ""
    if key:
        base = _ID_SUFFIX.sub("", words_of(key).strip()).strip()
    if not base and tool_name:
        words = [w for w in words_of(tool_name).lower().split() if w != verb]
        base = words[-1] if words else ""
    base = (base.split() or ["item"])[-1].lower()
    singular = base[:-1] if base.endswith("s") and not base.endswith("ss") else base
    return singular if count == 1 else _plural(singular)


def _plural(word: str) -> str:
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def normalised(text: str) -> str:
    """A reply as it is compared with a phrase: lower-case, single spaces, no edge punctuation."""
    return _SPACES.sub(" ", text.strip(_EDGES).lower())
