"""A bounded search for a claimed number as one step of arithmetic on the tools' numbers.

Answers compute: a difference of two values ("$380 more"), a ratio ("six times
what's in checking", "a tenth"), a share ("9% free": 18 of 200), a change in
percent ("an increase of 20%"), a complement ("100% - 91%"), a quotient by a
rate the output gives (56 hours at ``hours_per_day: 8`` is 7 days), a sum of
two values of one kind. The search tries every pair of the evidence's numbers
(and its aggregates: a list's sums, its sums of positives and of negatives),
one operation deep, and accepts a result within the precision the answer wrote.

One step only, and a bounded pool (the first ``MAX_VALUES`` distinct values),
so that the cost is bounded for a megabyte of output and a small claim does
not match by chance through a chain of operations. Sums and differences take
two values of one kind (the same key or the same unit): a latency less a
count is no quantity an answer reports. Small whole numbers (under 10) must
come out exactly: anything can be made to give 3 within a half.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llm_gateway.grounding.evidence import Evidence, Num
from llm_gateway.grounding.normalize import NumberToken, unit_of

MAX_VALUES = 60
SMALL = 10.0


@dataclass(frozen=True, slots=True)
class Derivation:
    how: str
    operands: tuple[Num, Num]


def _kind(n: Num) -> tuple[str, ...]:
    """What a number is a quantity of: its unit's dimension, else its own key's words."""
    if n.unit is not None and (unit := unit_of(n.unit)) is not None:
        return ("unit", unit[0])
    return tuple(sorted(n.key or n.words))


def _same_kind(a: Num, b: Num) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka and ka == kb:
        return True
    if ka[:1] == ("unit",) or kb[:1] == ("unit",):
        return False
    return bool((a.key or a.words) & (b.key or b.words))


def _fits(mine: tuple[str, float] | None, n: Num) -> bool:
    """Whether a number can be a term of a sum in the claim's unit (the same unit, or none)."""
    if mine is None or n.unit is None:
        return True
    return unit_of(n.unit) == mine


def _divides(mine: tuple[str, float] | None, n: Num) -> bool:
    """Whether a quotient of ``n`` can be in the claim's unit: hours over a rate give days."""
    if mine is None:
        return True
    theirs = unit_of(n.unit) if n.unit else None
    return theirs is not None and theirs[0] == mine[0]


def _member(a: Num, b: Num) -> bool:
    """Whether one is an aggregate of a list the other is an item of (a sum and its term)."""
    general = re.compile(r"\[\d+\]")
    ga, gb = general.sub("[]", a.where), general.sub("[]", b.where)
    if a.source != b.source or (a.how is None and b.how is None):
        return False  # two tools' counts, two stated values: no sum of its own term
    return ga == gb or ga.startswith(gb) or gb.startswith(ga)


def _rate(mine: tuple[str, float] | None, n: Num) -> bool:
    """Whether the claim is ``n`` in a larger unit of its dimension (hours to days at a rate)."""
    theirs = unit_of(n.unit) if n.unit else None
    return mine is not None and theirs is not None and theirs[0] == mine[0] and theirs != mine


def pool(evidence: Evidence) -> list[Num]:
    """The numbers a derivation may start from: tools' stated values and aggregates, bounded."""
    seen: dict[tuple[float, tuple[str, ...], bool], Num] = {}
    for group in (evidence.numbers, evidence.derived):
        for n in group:
            if n.source < 0 or not math.isfinite(n.value) or n.value == 0:
                continue
            if "&" in (n.how or ""):
                continue  # the items of two categories: no term of an answer's sum
            if n.how is not None and not n.how.startswith("count") and "[]" not in n.where:
                continue  # the sum of one object's fields is no quantity of its own
            seen.setdefault((abs(n.value), _kind(n), n.how is None), n)
            if len(seen) >= MAX_VALUES * (1 if group is evidence.numbers else 2):
                break
    return list(seen.values())


def search(
    evidence: Evidence, token: NumberToken, tolerance: float, allowed: Sequence[str]
) -> Derivation | None:
    """A pair of the evidence's numbers whose sum, difference, ratio or share is the claim."""
    value = abs(token.value)
    if value == 0 or token.text.lower() == "both":
        return None
    if value < SMALL and value == int(value):
        tolerance = 1e-9
    numbers = pool(evidence)
    mine = unit_of(token.unit) if token.unit else None
    ops = frozenset(allowed)

    def close(x: float) -> bool:
        return abs(x - value) <= tolerance

    if token.percent and "complement" in ops:
        for a in numbers:
            if 0 < abs(a.value) < 100 and close(100 - abs(a.value)):
                return Derivation("100% less", (a, a))
    step = _percent_step if token.percent else _step
    for a in numbers:
        for b in numbers:
            if b is not a and (how := step(a, b, ops, mine, close)) is not None:
                return Derivation(how, (a, b))
    return None


def _percent_step(
    a: Num, b: Num, ops: frozenset[str], mine: object, close: Callable[[float], bool]
) -> str | None:
    """A percentage of two numbers: a share of a whole, or a change from one to the other."""
    del mine
    x, y = abs(a.value), abs(b.value)
    if "share" in ops and y > x and close(100 * x / y):
        return "share"
    stated = a.how is None and b.how is None
    if "change" in ops and stated and _same_kind(a, b) and close(100 * abs(x - y) / y):
        return "change in percent"
    return None


def _step(
    a: Num,
    b: Num,
    ops: frozenset[str],
    mine: tuple[str, float] | None,
    close: Callable[[float], bool],
) -> str | None:
    """A sum or difference of two numbers of one kind, or a ratio of any two (the arithmetic
    first: the kinds are only looked at for a result that matches)."""
    x, y = abs(a.value), abs(b.value)
    if "sum" in ops and close(x + y) and _summable(a, b, mine) and not _member(a, b):
        return "sum"
    # a whole less its part is the rest ("the other three"): a term may leave its list
    if "difference" in ops and x > y and close(x - y) and _summable(a, b, mine):
        return "difference"
    ratio = "ratio" in ops or ("rate" in ops and _rate(mine, a))
    if ratio and y != 1 and close(x / y) and _divides(mine, a):
        return "ratio"
    return None


def _summable(a: Num, b: Num, mine: tuple[str, float] | None) -> bool:
    return _same_kind(a, b) and _fits(mine, a) and _fits(mine, b)
