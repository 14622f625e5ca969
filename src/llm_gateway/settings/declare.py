"""How a setting is declared: once, as a section's dataclass field carrying a :class:`Var`.

A ``Var`` holds everything about one environment variable: its names (the first
one set wins, so ``CLAUDE_API_KEY`` and ``ANTHROPIC_API_KEY`` are one setting),
the parser that turns the text into the field's type, the default, and the
line of documentation the README's reference is generated from. There is no
second list to keep in step: the loader, the reference and the tests all read
the fields.

Parsers raise ``ValueError`` with what was expected; the loader adds which
variable it was and where the value came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

VAR = "llm_gateway.settings.var"  # the field metadata key


@dataclass(frozen=True, slots=True, eq=False)
class Var(Generic[T]):
    """One setting: the variables it is read from, its parser, default and meaning.

    ``eq=False``: a Var is compared by identity, so one declared Var shared by two
    sections (``DATA_DIR``) is read and reported once.
    """

    names: tuple[str, ...]
    parse: Callable[[str], T]
    default: T
    doc: str
    secret: bool = False  # kept out of the section's repr

    @property
    def name(self) -> str:
        return self.names[0]

    def field(self) -> T:
        """A dataclass field reading this Var (typed as its value, for the class body)."""
        return dataclasses.field(default=self.default, repr=not self.secret, metadata={VAR: self})


def var(
    names: str | tuple[str, ...],
    parse: Callable[[str], T],
    default: T,
    doc: str,
    *,
    secret: bool = False,
) -> T:
    """Declare a section field read from ``names`` (see :class:`Var`)."""
    names = (names,) if isinstance(names, str) else names
    return Var(names, parse, default, doc, secret).field()


def var_of(f: dataclasses.Field[Any]) -> Var[Any]:
    """The Var a section field was declared with; ``KeyError`` for a plain field."""
    found: Var[Any] = f.metadata[VAR]
    return found


class Section:
    """Base of the sections: a frozen dataclass of ``var(...)`` fields.

    ``problems`` checks what no single variable can (a pair that must go
    together); the loader lists them with the parse errors' style.
    """

    __slots__ = ()

    def problems(self) -> list[str]:
        return []


class AutoOnOff(StrEnum):
    """A feature that may be missing: use it when available, require it, or never."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


# --- parsers ---------------------------------------------------------------


def integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return value

    return parse


def seconds(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("expected a number of seconds, zero or more")
    return value


def fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("expected a number from 0 to 1")
    return value


def choice(enum: type[E], *allowed: E) -> Callable[[str], E]:
    """A member of ``enum`` (or of ``allowed`` when given), by its value, in any case."""
    options = allowed or tuple(enum)

    def parse(raw: str) -> E:
        value = raw.strip().lower()
        for member in options:
            if member.value == value:
                return member
        raise ValueError(f"expected one of {', '.join(m.value for m in options)}")

    return parse


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def existing_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"expected an existing file, {raw!r} is not one")
    return path


def http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def text(raw: str) -> str:
    return raw


def optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """``parse`` for a setting whose default is unset (``None``); typing only."""
    return parse
