"""Whether the evidence supports a claim, contradicts it, or says nothing of it.

The order of the tests is the order of confidence: a value the tools state
(after rounding to the precision the answer wrote) is ``supported``; one they
let the answer compute (a unit conversion, a count of a list's items, a sum,
a difference the answer says it took, an approximation the answer says it
made) is ``derived``; one that differs from a value the tools give for the
same subject (the same key words, the same object's state, an id one or two
characters away) is ``contradicted``; the rest are ``unsupported``.

Some claims are dropped instead of judged, because judging them would only
add false alarms: a "no problems" with nothing to count, a state word when no
tool reported any state.
"""

from __future__ import annotations

import bisect
import datetime
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from llm_gateway.grounding import derive
from llm_gateway.grounding.claims import Candidate
from llm_gateway.grounding.evidence import (
    CONTEXT,
    QUESTION,
    Evidence,
    Num,
    dates_near,
    key_stems,
    line_counts,
)
from llm_gateway.grounding.identifiers import REGION, within_distance
from llm_gateway.grounding.model import Status
from llm_gateway.grounding.normalize import Date, NumberToken, conversions, stem, unit_of, word_set
from llm_gateway.grounding.states import conflicts
from llm_gateway.grounding.states import holds as state_holds

_SYNONYMS: dict[str, str] = {
    "price": "cost", "amount": "cost", "charge": "cost", "spend": "cost", "spent": "cost",
    "bill": "cost", "fee": "cost", "costs": "cost", "pay": "cost",
    "ram": "memory", "mem": "memory",
    "temp": "temperature", "degree": "temperature",
    "rtt": "latency", "response": "latency",
    "utilization": "cpu", "usage": "cpu",
    "average": "mean", "averaged": "mean", "avg": "mean",
    "pr": "pull", "request": "pull",
}  # fmt: skip
_GENERIC = word_set("count value number id name item data result code type key")
# Keys whose bare numbers are durations in seconds, as AWS and most APIs give them.
_SECONDS_KEYS = word_set("age duration elapsed uptime timeout delay interval period wait")
_BYTES_KEYS = word_set("memory mem size bytes storage disk")


def _unit_by_key(words: frozenset[str]) -> str | None:
    """The unit a bare number's key implies: seconds for an age, bytes for a memory size."""
    if words & _SECONDS_KEYS:
        return "s"
    if words & _BYTES_KEYS:
        return "bytes"
    return None


_CHANGE_KEYS = word_set("change delta diff difference growth variance")
_DIGITS = re.compile(r"-?[\d,]*\.?\d+")
MAX_PAIR_VALUES = 400
MAX_TIMES = 200


@dataclass(frozen=True, slots=True)
class Judgement:
    status: Status
    source: int | None  # the fact's source (a tool's index, QUESTION, CONTEXT), if any
    found: str | None
    explanation: str
    sources: frozenset[int] = frozenset()  # every tool whose output supports the claim


@lru_cache(maxsize=16_384)
def _canon(words: frozenset[str]) -> frozenset[str]:
    return frozenset(_SYNONYMS.get(w, w) for w in words) - _GENERIC


def _show(value: float) -> str:
    return f"{value:.10g}"


def _pick(sources: Iterable[int]) -> int:
    """The most telling source: a tool (the first) over the question over the context."""
    ordered = sorted(set(sources), key=lambda s: (s < 0, -s if s < 0 else s))
    return ordered[0]


def _where(evidence: Evidence, source: int) -> str:
    if source == QUESTION:
        return "in the question"
    if source == CONTEXT:
        return "in the conversation's context"
    return f"in the output of {evidence.tool_id(source) or 'a tool'}"


def _supported(
    evidence: Evidence, status: Status, facts: Sequence[Num], why: str, found: str | None = None
) -> Judgement:
    source = _pick(f.source for f in facts)
    best = next(f for f in facts if f.source == source)
    shown = found if found is not None else _show(best.value)
    where = f" ({best.where})" if best.where not in ("text", "") and source >= 0 else ""
    return Judgement(
        status, source, shown, f"{why} {_where(evidence, source)}{where}",
        frozenset(f.source for f in facts if f.source >= 0),
    )  # fmt: skip


# ---------------------------------------------------------------- numbers


def _tolerance(token: NumberToken, approx: bool) -> float:
    """How far from the written value a fact may be and still be the same number."""
    value = abs(token.value)
    written = _DIGITS.match(token.text)
    scale = 1.0
    if token.scaled and written is not None:
        try:
            plain = abs(float(written.group().replace(",", "")))
            scale = value / plain if plain else 1.0
        except ValueError:
            scale = 1.0
    half = 0.5 * 10.0 ** (-token.decimals) * scale if not token.word else 0.0
    if not (approx or token.scaled):
        return max(half, 1e-9 * max(1.0, value))
    zeros = 0
    digits = str(int(value)) if value >= 1 and token.decimals == 0 else ""
    while digits.endswith("0") and zeros < len(digits) - 1:
        digits, zeros = digits[:-1], zeros + 1
    return max(half, 0.05 * value, 0.5 * 10.0**zeros if zeros else 0.0)


def _countable(token: NumberToken) -> bool:
    """Whether the number can be a count of things (no unit, no currency, no percent sign)."""
    return token.unit is None and not token.currency and not token.percent and not token.scaled


def _unit_fits(token: NumberToken, fact: Num) -> bool:
    """Whether a fact in its unit can be the claim in its own: no unit, or the same amount."""
    if token.unit is None:
        return True
    if fact.unit is None:
        # A bare number in plain text is no duration: text writes the unit it means.
        return not (fact.where == "text" and (unit_of(token.unit) or ("", 0.0))[0] == "time")
    mine, theirs = unit_of(token.unit), unit_of(fact.unit)
    if mine is None or theirs is None:
        return True
    return mine == theirs


def _matches(
    evidence: Evidence, value: float, tolerance: float, token: NumberToken, derived: bool
) -> list[Num]:
    return [
        f
        for f in evidence.near(value, value - tolerance, value + tolerance, derived)
        if _unit_fits(token, f)
    ]


def _converted(evidence: Evidence, token: NumberToken, approx: bool) -> list[Num]:
    """Facts that state the claim's quantity in another unit ("2 GiB" and ``SizeInMiB: 2048``)."""
    if token.unit is None:
        return []
    found: list[Num] = []
    base = _tolerance(token, approx) / max(abs(token.value), 1e-9)
    for value, unit in conversions(token.value, token.unit):
        tolerance = max(abs(value) * max(base, 0.01), 1e-9)
        target = unit_of(unit)
        for derived in (False, True):
            for fact in evidence.near(value, value - tolerance, value + tolerance, derived):
                unit_said = fact.unit or _unit_by_key(fact.words)
                if unit_said is not None and unit_of(unit_said) == target:
                    found.append(fact)
    return found


def _pairs(evidence: Evidence, value: float, tolerance: float, sums: bool) -> list[Num]:
    """Two stated numbers whose difference (or sum) is ``value``."""
    pool = [n for n in evidence.numbers if n.source >= 0][: MAX_PAIR_VALUES * 4]
    seen: dict[float, Num] = {}
    for n in pool:
        seen.setdefault(n.value, n)
        if len(seen) >= MAX_PAIR_VALUES:
            break
    values = sorted(seen)
    for a in values:
        for target in (a - value, a + value) if not sums else (value - a,):
            i = bisect.bisect_left(values, target - tolerance)
            if i < len(values) and values[i] <= target + tolerance and values[i] != a:
                return [seen[a], seen[values[i]]]
    return []


def _ratio(evidence: Evidence, percent: float, tolerance: float) -> Judgement | None:
    """A percentage that is one count of a tool's over another ("75% of the fleet is up")."""
    counts = sorted({(n.source, n.value) for n in evidence.counts if n.value > 0})[:MAX_TIMES]
    for source, part in counts:
        for other, whole in counts:
            if other == source and part < whole:
                share = 100 * part / whole
                if abs(share - percent) <= max(tolerance, 0.5):
                    return Judgement(
                        "derived", source, f"{_show(part)}/{_show(whole)}",
                        f"{_show(part)} of {_show(whole)} {_where(evidence, source)}",
                        frozenset({source}),
                    )  # fmt: skip
    return None


def _date_gap(evidence: Evidence, claim: Candidate, token: NumberToken) -> bool:
    """Whether the claimed number of days (or nights) lies between two of the tools' dates."""
    unit = unit_of(token.unit) if token.unit else None
    if unit is not None and unit[0] == "time":
        days = token.value * unit[1] / 86400
    elif claim.subject & {"night", "day"}:
        days = token.value
    else:
        return False
    ordinals = sorted({date.toordinal() for date in _tool_dates(evidence)})[:MAX_TIMES]
    wanted = round(days)
    return abs(days - wanted) < 1e-6 and any(
        b - a == wanted for a in ordinals for b in ordinals if b > a
    )


def _tool_dates(evidence: Evidence) -> Iterable[datetime.date]:
    for (year, month, day), sources in evidence.dates.items():
        if year is not None and any(s >= 0 for s in sources):
            try:
                yield datetime.date(year, month, day)
            except ValueError:
                continue


def _clock_gap(evidence: Evidence, token: NumberToken) -> bool:
    """Whether the claimed duration is the gap between two times the tools give."""
    if token.unit is None or (unit := unit_of(token.unit)) is None or unit[0] != "time":
        return False
    minutes = token.value * unit[1] / 60
    times = [h * 60 + m for (h, m), s in evidence.times.items() if any(x >= 0 for x in s)]
    times = sorted(times)[:MAX_TIMES]
    wanted = {round(minutes)} if abs(minutes - round(minutes)) < 1e-6 else set()
    return any(b - a in wanted for a in times for b in times if b > a)


def _subject_facts(evidence: Evidence, claim: Candidate, pool: Iterable[Num]) -> list[Num]:
    subject = _canon(claim.subject)
    if not subject:
        return []
    return [f for f in pool if f.source >= 0 and subject & _canon(f.words)]


def judge_number(
    claim: Candidate, evidence: Evidence, entity: Sequence[tuple[int, str]] = ()
) -> Judgement | None:
    """A number, given the object its clause names (``entity``: that object's scopes)."""
    token: NumberToken = claim.value
    value, approx = token.value, "approx" in claim.cues
    tolerance = _tolerance(token, approx=False)
    stated = _stated(claim, evidence, tolerance)
    if stated and claim.kind == "count" and all("[" in f.scope for f in stated):
        # "Two users lack MFA": a count of a list's items, not one item's field that is 2
        counts = _subject_counts(claim, evidence)
        if any(f.how is not None and f.how.startswith("count of") for f in counts):
            stated = []
    if stated:
        return _judge_stated(claim, evidence, stated, entity)
    converted = _converted(evidence, token, approx)
    if converted:
        return _supported(evidence, "derived", converted, "the same quantity in another unit")
    counts, both = _counts_meant(claim, evidence, token)
    agreeing = [f for f in counts if abs(f.value - value) < 1e-9]
    if agreeing and entity and (wrong_tool := _other_call(agreeing, counts, entity)) is not None:
        return wrong_tool
    if agreeing and (page := _one_page(claim, evidence, agreeing)) is not None:
        return page
    if agreeing:
        return _supported(evidence, "derived", agreeing, f"the {agreeing[0].how}")
    specific = both or ([f for f in counts if _specific(f, claim)] if claim.kind == "count" else [])
    # A count of the list the noun names is not rescued by another list's count
    other_lists = claim.kind == "count" and bool(counts)
    computed = None if specific else _computed(claim, evidence, token, tolerance, other_lists)
    if computed is not None:
        return computed
    if specific:
        # "Two users lack MFA" when three have none: a count of the items the words pick out
        fact = specific[0]
        return Judgement(
            "contradicted", fact.source, _show(fact.value),
            f"{_where(evidence, fact.source)} the {fact.how} is {_show(fact.value)}",
        )  # fmt: skip
    if counts and (claim.kind == "count" or "zero" in claim.cues):
        # A count of a list the claim's noun names, and none of its counts agree.
        total = next((f for f in counts if f.how == "count"), counts[0])
        return Judgement(
            "contradicted", total.source, _show(total.value),
            f"{_where(evidence, total.source)} the {total.how} is {_show(total.value)}",
        )  # fmt: skip
    return _unmatched_number(claim, evidence, value)


def _stated(claim: Candidate, evidence: Evidence, tolerance: float) -> list[Num]:
    """The facts that state the claim's value (as written, as a magnitude, as a fraction)."""
    token: NumberToken = claim.value
    value = token.value
    stated = _matches(evidence, value, tolerance, token, derived=False)
    if not stated and value > 0:
        # "down $2.41 (1.29%)" for a change of -2.41 and -1.29
        stated = [
            f
            for f in _matches(evidence, -value, tolerance, token, derived=False)
            if "down" in claim.cues or f.key & _CHANGE_KEYS or token.currency
        ]  # a debit of -1250.0 is "$1,250.00 out"
    if token.percent and not stated:
        ratio = value / 100
        stated = [f for f in _matches(evidence, ratio, tolerance / 100, token, False)
                  if abs(f.value) <= 1]  # fmt: skip
    return stated


def _judge_stated(
    claim: Candidate, evidence: Evidence, stated: list[Num], entity: Sequence[tuple[int, str]]
) -> Judgement:
    """A stated value, unless said of another object, under another key, or of one page."""
    if all(f.source < 0 for f in stated) and (told := _premise(claim, evidence)) is not None:
        return told
    rows = [scope for scope in entity if scope[1] not in ("", "arguments")]
    if rows and (wrong_row := _other_object(claim, evidence, stated, rows)) is not None:
        return wrong_row
    if (other_key := _other_key(claim, evidence, stated)) is not None:
        return other_key
    if (page := _one_page(claim, evidence, stated)) is not None:
        return page
    return _supported(evidence, "supported", stated, "stated")


def _premise(claim: Candidate, evidence: Evidence) -> Judgement | None:
    """A value only the user gave, when a tool gives its key another value ("prod-db has 2 TB
    allocated" when ``AllocatedStorage: 500``): the tool's answer, not the premise, holds."""
    token: NumberToken = claim.value
    subject = _canon(claim.subject)
    if not subject:
        return None
    keyed = [
        f
        for f in evidence.numbers
        if f.source >= 0 and f.key and subject & _canon(f.key) and _unit_fits(token, f)
    ]
    if len(keyed) != 1 or abs(keyed[0].value - token.value) < 1e-9:
        return None
    fact = keyed[0]
    return Judgement(
        "contradicted", fact.source, _show(fact.value),
        f"the user said so; {_where(evidence, fact.source)} {fact.where} is {_show(fact.value)}",
    )  # fmt: skip


def _computed(
    claim: Candidate,
    evidence: Evidence,
    token: NumberToken,
    tolerance: float,
    named_list: bool = False,
) -> Judgement | None:
    """A value the tools' values give by a sum, min, max, mean, difference or approximation."""
    value, approx = token.value, "approx" in claim.cues
    derived = [
        f
        for f in _matches(evidence, value, tolerance, token, derived=True)
        if "&" not in (f.how or "")  # two categories' count: only when the words name both
        and not (named_list and f.how in ("lines", "count"))
        and (f.how != "sum" or "total" in claim.cues or "[]" in f.where or f.where == "text")
        and (_countable(token) or not (f.how or "").startswith(("count", "lines")))
    ]
    if derived:
        return _supported(evidence, "derived", derived, f"the {derived[0].how} of values")
    if "compare" in claim.cues or "total" in claim.cues:
        pair = _pairs(evidence, value, tolerance, sums="compare" not in claim.cues)
        if pair:
            how = "difference" if "compare" in claim.cues else "sum"
            return _supported(evidence, "derived", pair, f"the {how} of two values")
    if token.percent and (ratio := _ratio(evidence, value, tolerance)) is not None:
        return ratio
    if _date_gap(evidence, claim, token):
        return Judgement("derived", None, None, "the days between two of the tools' dates")
    if _clock_gap(evidence, token):
        return Judgement("derived", None, None, "the time between two of the tools' times")
    found = derive.search(evidence, token, _tolerance(token, approx), _operations(claim))
    if found is not None:
        a, b = found.operands
        return _supported(
            evidence, "derived", [a, b], f"the {found.how} of {_show(a.value)} and {_show(b.value)}"
        )
    if approx or token.scaled:
        wide = _tolerance(token, approx=True)
        near = _matches(evidence, value, wide, token, False) + _matches(
            evidence, value, wide, token, True
        )
        if near:
            return _supported(evidence, "derived", near, "approximately")
    return None


_RATIO_WORDS = word_set("times per each every ratio average rate x")


def _operations(claim: Candidate) -> tuple[str, ...]:
    """The arithmetic the claim's words say it did: a total sums, "more" or "left" subtracts."""
    ops = ["rate"]  # 56 hours at 8 hours a day is 7 days: a quantity in another unit
    if "total" in claim.cues:
        ops.append("sum")
    if "compare" in claim.cues or "down" in claim.cues:
        ops += ["difference", "change", "complement", "share"]
    if claim.after[:1] == ("of",) or "out" in claim.after[:1]:
        ops.append("share")
    if set(claim.after[:2]) & _RATIO_WORDS or set(claim.before[-2:]) & _RATIO_WORDS:
        ops.append("ratio")
    return tuple(ops)


def _other_key(claim: Candidate, evidence: Evidence, stated: list[Num]) -> Judgement | None:
    """The value is stated, but under another key than the one the claim names.

    "2 critical ones" when ``low: 2`` and ``critical: 0``: the claim's noun is
    a key of the tools' whose value differs, and no fact with the value has a
    key the claim names.
    """
    subject = _canon(claim.near)
    if not subject or any(f.source < 0 or _canon(claim.subject) & _canon(f.words) for f in stated):
        return None
    keyed = [
        f
        for f in evidence.numbers
        if f.source >= 0
        and f.key
        and subject & _canon(f.key)
        and f.value != claim.value.value
        and (claim.value.unit is None or f.unit is not None)  # "41 ms" is no count of requests
    ]
    if len(keyed) != 1:
        return None  # none, or several: nothing says which one is meant
    fact = keyed[0]
    return Judgement(
        "contradicted", fact.source, _show(fact.value),
        f"{_where(evidence, fact.source)} {fact.where} is {_show(fact.value)}",
    )  # fmt: skip


def _other_object(
    claim: Candidate, evidence: Evidence, stated: list[Num], entity: Sequence[tuple[int, str]]
) -> Judgement | None:
    """The value is stated, but of another object than the one the claim names (a wrong row)."""
    scopes = set(entity)
    if any((f.source, f.scope) in scopes or f.source < 0 or f.where.startswith("arguments")
           for f in stated):  # fmt: skip
        return None  # said of that object, or a number the user or the call gave
    own = [f for f in evidence.numbers if (f.source, f.scope) in scopes]
    if not own:
        return None
    subject = _canon(claim.subject)
    related = [f for f in own if subject & _canon(f.words)] or own
    if len(related) > 1 and not subject & _canon(related[0].words):
        return None  # the object has several numbers and nothing says which one is meant
    fact = related[0]
    return Judgement(
        "contradicted", fact.source, _show(fact.value),
        f"{_where(evidence, fact.source)} its {fact.where} is {_show(fact.value)}",
    )  # fmt: skip


_PAGE_WORDS = word_set("least first page showing shown listed returned more over sample")


_TOTAL_KEYS = word_set("total count results result items item hits hit records record rows")


def _one_page(claim: Candidate, evidence: Evidence, facts: list[Num]) -> Judgement | None:
    """A count of one page of a listing given as the whole: the output says it is truncated,
    or gives a larger total ("5 open bugs" when ``total_count: 12`` and 5 items listed)."""
    token: NumberToken = claim.value
    if not _countable(token) or "approx" in claim.cues:
        return None
    if set(claim.before) & _PAGE_WORDS or set(claim.after) & _PAGE_WORDS:
        return None  # "the first 5", "at least 1,000", "5 shown"
    lists = [c for c in evidence.counts if c.how == "count" and c.value == token.value]
    for fact in [*facts, *lists]:
        if fact.source < 0 or not (fact.how == "count" or "count" in fact.key):
            continue
        totals = [
            n
            for n in evidence.numbers
            if n.source == fact.source
            and n.scope == ""
            and "total" in n.key
            and n.key <= _TOTAL_KEYS
            and n.value == int(n.value)
            and n.value > token.value
        ]
        if totals or fact.source in evidence.paged:
            shown = _show(totals[0].value) if totals else None
            why = f"the total is {shown}" if shown else "the listing is truncated"
            return Judgement(
                "contradicted", fact.source, shown, f"{_where(evidence, fact.source)} {why}"
            )
    return None


_NONE = frozenset({"without", "lack", "no", "none", "zero", "missing"})


def _counts_meant(
    claim: Candidate, evidence: Evidence, token: NumberToken
) -> tuple[list[Num], list[Num]]:
    """The counts the claim's noun names, and those of two categories its words both name."""
    counts = _subject_counts(claim, evidence) if _countable(token) else []
    if claim.kind != "count" or not counts:
        return counts, []
    scores = [_specificity(f, claim) for f in counts]
    if max(scores) >= 2:  # "two critical alerts are firing": the items of both categories
        both = [f for f, n in zip(counts, scores, strict=True) if n == max(scores)]
        return both, both
    # a count of two categories is only meant when the words name both
    return [f for f in counts if "&" not in (f.how or "")], []


def _specificity(count: Num, claim: Candidate) -> int:
    """How many of the categories a count is of the claim's words name."""
    how = count.how or ""
    if not how.startswith("count of ") or "=" not in how:
        return 0
    parts = how[len("count of ") :].split("&")
    clause = {stem(w) for w in (*claim.before[-4:], *claim.after)} | claim.subject
    return sum(1 for part in parts if key_stems(part.split("=", 1)[-1]) & clause)


def _specific(count: Num, claim: Candidate) -> bool:
    """Whether a count is of the items the claim's own words pick out ("lack", "firing")."""
    how = count.how or ""
    words = {w for w in claim.subject}
    if how == "count of none":
        return bool(words & _NONE)
    if how.startswith("count of ") and "=" in how and count.value >= 2:
        # a value several items share is a category ("firing"); one item's value names it
        field, value = how[len("count of ") :].split("=", 1)
        return field.strip("[].") != "" and bool(key_stems(value) & words) and len(words) > 1
    return False


def _other_call(
    agreeing: list[Num], counts: list[Num], entity: Sequence[tuple[int, str]]
) -> Judgement | None:
    """A count of another call's list than the call the clause names ("eu-west-1 has 4" when
    the eu-west-1 call listed 2 and the us-east-1 call 4)."""
    named = {source for source, scope in entity if scope == "arguments"}
    if any(f.source in named for f in agreeing):
        return None
    own = [f for f in counts if f.source in named and f.how == "count"]
    if len(named) != 1 or not own:
        return None
    fact = own[0]
    return Judgement(
        "contradicted", fact.source, _show(fact.value),
        f"the call it names has {_show(fact.value)} ({fact.where})",
    )  # fmt: skip


def _subject_counts(claim: Candidate, evidence: Evidence) -> list[Num]:
    """The counts of lists (and of plain outputs' lines) that the claim's noun names."""
    counts = _subject_facts(evidence, claim, evidence.counts)
    for source, n, word in line_counts(evidence, _canon(claim.subject)):
        counts.append(Num(float(n), source, frozenset({word}), None, "text", f"lines with {word}"))
    return counts


def _unmatched_number(claim: Candidate, evidence: Evidence, value: float) -> Judgement | None:
    if "zero" in claim.cues:
        return None  # "no problems": nothing said that a tool could contradict
    token: NumberToken = claim.value
    if token.text.lower() == "both":
        return None  # "both regions": a quantifier over two things the answer names
    if "ordinal" in claim.cues and 1 <= value <= 31 and value == int(value):
        days = [d for (y, _m, d), s in evidence.dates.items() if y and any(x >= 0 for x in s)]
        if int(value) in days:  # "paid on the 3rd": a day of one of the tools' dates
            return Judgement("derived", None, None, "the day of one of the tools' dates")
    related = [
        f
        for f in _subject_facts(evidence, claim, evidence.numbers)
        if _unit_fits(token, f) and f.value != 0 and (token.unit is None or f.unit is not None)
    ]
    if related:
        closest = min(related, key=lambda f: abs(f.value - value) / max(abs(f.value), 1e-9))
        return Judgement(
            "contradicted", closest.source, _show(closest.value),
            f"{_where(evidence, closest.source)} {closest.where} is {_show(closest.value)}",
        )  # fmt: skip
    return Judgement("unsupported", None, None, "no tool output states or implies this value")


# ---------------------------------------------------------------- identifiers, names


def _occurs(text: str, value: str) -> bool:
    """Whether ``value`` occurs in ``text`` as a whole token (not inside a longer id)."""
    start = text.find(value)
    tries = 0
    while start >= 0 and tries < 1000:
        before = text[start - 1] if start else " "
        end = start + len(value)
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before in "-_") and not (after.isalnum() or after in "-_"):
            return True
        start = text.find(value, start + 1)
        tries += 1
    return False


def _sources_with(evidence: Evidence, value: str) -> list[int]:
    found = [source for source, text in evidence.texts if _occurs(text, value)]
    if not found and REGION.fullmatch(value):
        # A region is named by its zones too (us-east-1a, europe-west1-b).
        zone = re.compile(re.escape(value) + "-?[a-z](?![a-z0-9])")
        found = [source for source, text in evidence.texts if zone.search(text)]
    return found


def judge_identifier(claim: Candidate, evidence: Evidence) -> Judgement:
    value: str = claim.value
    if value.startswith("#"):
        return _judge_reference(claim, evidence, value)
    sources = _sources_with(evidence, value)
    known = evidence.identifiers.get(value)
    if known is not None:
        sources.append(known[1])
    if sources:
        source = _pick(sources)
        return Judgement(
            "supported", source, value, f"found {_where(evidence, source)}",
            frozenset(s for s in sources if s >= 0),
        )  # fmt: skip
    limit = 1 if len(value) < 8 else 2
    for other, (kind, source) in evidence.identifiers.items():
        if kind == claim.kind and other != value and within_distance(value, other, limit):
            return Judgement(
                "contradicted", source, other,
                f"{_where(evidence, source)} the nearest identifier is {other}",
            )  # fmt: skip
    return Judgement("unsupported", None, None, "no tool output mentions this identifier")


MAX_NAMES_COMPARED = 20_000


def near_name(claim: Candidate, evidence: Evidence) -> Judgement | None:
    """A hyphenated name one character away from a name in the tools' values (``acme-prod-log``
    for ``acme-prod-logs``): contradicted; a name like no tool's is no claim at all."""
    value: str = claim.value
    for index, (other, scopes) in enumerate(evidence.entities.items()):
        if index >= MAX_NAMES_COMPARED:
            break
        near = "-" in other and abs(len(other) - len(value)) <= 1 and other != value
        if near and within_distance(value, other, 1):
            source = scopes[0][0]
            return Judgement(
                    "contradicted", source, other,
                    f"{_where(evidence, source)} the nearest name is {other}",
                )  # fmt: skip
    return None


def _judge_reference(claim: Candidate, evidence: Evidence, value: str) -> Judgement:
    """ "#412": a pull request's or issue's number, a stated number or "#412" in the text."""
    number = float(value[1:])
    facts = list(evidence.near(number, number, number))
    if facts:
        return _supported(evidence, "supported", facts, "stated", value)
    sources = _sources_with(evidence, value)
    if sources:
        source = _pick(sources)
        return Judgement("supported", source, value, f"found {_where(evidence, source)}",
                         frozenset(s for s in sources if s >= 0))  # fmt: skip
    del claim
    return Judgement("unsupported", None, None, "no tool output mentions this number")


def judge_name(claim: Candidate, evidence: Evidence) -> Judgement:
    value: str = claim.value
    sources = _sources_with(evidence, value)
    if sources:
        source = _pick(sources)
        return Judgement("supported", source, claim.text, f"found {_where(evidence, source)}",
                         frozenset(s for s in sources if s >= 0))  # fmt: skip
    for word in value.split():
        if len(word) >= 3 and (sources := _sources_with(evidence, word)):
            source = _pick(sources)
            return Judgement("supported", source, word, f"partly found {_where(evidence, source)}",
                             frozenset(s for s in sources if s >= 0))  # fmt: skip
    return Judgement("unsupported", None, None, "no tool output mentions this name")


# ---------------------------------------------------------------- dates, times


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _wrong_weekday(
    claim: Candidate, evidence: Evidence, date: Date, source: int
) -> Judgement | None:
    """ "Sunday, November 30" when November 30 of the tools' year is a Monday."""
    said = next((c[8:] for c in claim.cues if c.startswith("weekday:")), None)
    if said is None:
        return None
    years = {date.year} if date.year is not None else {
        y for (y, m, d) in evidence.dates if y is not None and (m, d) == (date.month, date.day)
    }  # fmt: skip
    for year in sorted(y for y in years if y is not None):
        try:
            actual = _WEEKDAYS[datetime.date(year, date.month, date.day).weekday()]
        except ValueError:
            continue
        if actual != said:
            return Judgement(
                "contradicted", source, actual,
                f"{year:04d}-{date.month:02d}-{date.day:02d} is a {actual}, not a {said}",
            )  # fmt: skip
        return None
    return None


def judge_date(claim: Candidate, evidence: Evidence) -> Judgement:
    readings = claim.value
    for date in readings:
        sources = evidence.dates.get((date.year, date.month, date.day))
        if sources:
            source = _pick(sources)
            if (wrong := _wrong_weekday(claim, evidence, date, source)) is not None:
                return wrong
            return Judgement("supported", source, date.iso(), f"found {_where(evidence, source)}",
                             frozenset(s for s in sources if s >= 0))  # fmt: skip
    for date in readings:
        for near in dates_near(evidence, date)[:1]:
            if abs((near[1] * 31 + near[2]) - (date.month * 31 + date.day)) <= 31:
                sources = evidence.dates[near]
                if any(s >= 0 for s in sources):
                    source = _pick(sources)
                    shown = f"{near[0]:04d}-{near[1]:02d}-{near[2]:02d}"
                    return Judgement(
                        "contradicted", source, shown,
                        f"{_where(evidence, source)} the nearest date is {shown}",
                    )  # fmt: skip
    return Judgement("unsupported", None, None, "no tool output has this date")


def judge_time(claim: Candidate, evidence: Evidence) -> Judgement:
    hour, minute = claim.value
    readings = [(hour, minute)]
    if hour < 12 and not re.search(r"[AaPp]\.?[Mm]", claim.text):
        readings.append((hour + 12, minute))
    for reading in readings:
        sources = evidence.times.get(reading)
        if sources:
            source = _pick(sources)
            return Judgement("supported", source, f"{reading[0]:02d}:{reading[1]:02d}",
                             f"found {_where(evidence, source)}",
                             frozenset(s for s in sources if s >= 0))  # fmt: skip
    known = [(t, s) for t, s in evidence.times.items() if any(x >= 0 for x in s)]
    if "zone" in claim.cues:
        # "11:42 AM New York time" for 16:42Z: the same minute, whole hours away
        for (h, m), sources in known:
            if m == minute and any(0 < abs(h - r[0]) <= 14 for r in readings) and sources:
                source = _pick(sources)
                return Judgement("derived", source, f"{h:02d}:{m:02d}",
                                 f"{h:02d}:{m:02d} in another time zone {_where(evidence, source)}",
                                 frozenset(x for x in sources if x >= 0))  # fmt: skip
    if known:
        target = hour * 60 + minute
        (h, m), sources = min(known, key=lambda k: abs(k[0][0] * 60 + k[0][1] - target))
        if abs(h * 60 + m - target) <= 180:
            source = _pick(sources)
            return Judgement(
                "contradicted",
                source,
                f"{h:02d}:{m:02d}",
                f"{_where(evidence, source)} the nearest time is {h:02d}:{m:02d}",
            )
    return Judgement("unsupported", None, None, "no tool output has this time")


# ---------------------------------------------------------------- states


def _state_of(
    evidence: Evidence, state: str, claim: Candidate, scopes: list[tuple[int, str]]
) -> Judgement | None:
    """The state said of one object (or of each object a word names): None if no say.

    A word naming several objects ("payments" in two monitors' names) supports
    a state only if every one of them is in it; one in a clashing state
    contradicts "all"/"both", and otherwise leaves the word ambiguous.
    """
    negated = "not" in claim.cues
    each: list[tuple[int, set[str]]] = []
    for source, scope in scopes:
        for enclosing in _enclosing(scope):
            if (source, enclosing) in evidence.scope_states:
                each.append((source, evidence.scope_states[(source, enclosing)]))
                break
    if not each:
        return None
    verdicts = []
    for _source, states in each:
        holds = state_holds(state, states)
        clash = any(conflicts(state, other) for other in states)
        if holds != negated and (holds or clash):
            verdicts.append(True)
        elif (holds and negated) or (clash and not negated):
            verdicts.append(False)
    if not verdicts:
        return None
    tools = {source for source, _ in each}
    shown = ",".join(sorted(set().union(*(states for _, states in each))))
    source = min(tools)
    where = f"it is {shown} {_where(evidence, source)}"
    if all(verdicts):
        return Judgement("supported", source, shown, where, frozenset(tools))
    if len(each) == 1 or not any(verdicts) or "all" in claim.cues:
        return Judgement("contradicted", source, shown, where)
    return None


def _enclosing(scope: str) -> Iterable[str]:
    """The scope and the list items that enclose it, nearest first: a tag's ``Value`` names
    the instance whose ``Tags`` list it is in (``Instances[0].Tags[0]`` -> ``Instances[0]``)."""
    yield scope
    end = scope.rfind("].")
    while end > 0:
        yield scope[: end + 1]
        end = scope.rfind("].", 0, end)


_INDEX = re.compile(r"\[\d+\]")


def other_item(
    claim: Candidate,
    evidence: Evidence,
    subject: Sequence[tuple[int, str]],
    found: str | None = None,
) -> Judgement | None:
    """A value of another item of the list than the one its clause names ("web-1 is at
    10.0.3.42" when 10.0.3.42 is web-2's address): contradicted."""
    if claim.kind == "time":
        hour, minute = (int(part) for part in (found or "").split(":")) if found else claim.value
        own = evidence.time_scopes.get((hour, minute), [])
    else:
        own = evidence.entities.get(str(claim.value).lower(), [])
    if not subject or not own or len(own) > 20:
        return None
    verdict: Judgement | None = None
    for source, scope in subject:
        for held, where in own:
            if held != source:
                continue
            relation = _relation(scope, where)
            if relation == "same":
                return None
            if relation == "other" and verdict is None:
                verdict = Judgement(
                    "contradicted", source, where,
                    f"{_where(evidence, source)} it belongs to another item ({where})",
                )  # fmt: skip
    return verdict


def _relation(mine: str, theirs: str) -> str | None:
    """Whether two scopes are in one item of a list ("same"), in two ("other"), or neither."""
    if not mine or not theirs or "arguments" in (mine, theirs):
        return None
    levels = {_INDEX.sub("[]", e): e for e in _enclosing(theirs) if e.endswith("]")}
    for enclosing in _enclosing(mine):
        if not enclosing.endswith("]"):
            continue
        other = levels.get(_INDEX.sub("[]", enclosing))
        if other is not None:
            return "same" if other == enclosing else "other"
    return None


def judge_state(
    claim: Candidate, evidence: Evidence, entities: Sequence[list[tuple[int, str]]]
) -> Judgement | None:
    """A state said of the nearest thing the clause names before it, or of the tools' things.

    Only a state of the same axis contradicts ("running" and "stopped", not
    "running" and "healthy"); a state in none of the tools' axes is dropped.
    """
    if not evidence.all_states:
        return None
    state: str = claim.value
    negated = "not" in claim.cues
    for scopes in entities:
        said_of = _state_of(evidence, state, claim, scopes)
        if said_of is not None:
            return said_of
    if "all" in claim.cues and not negated:
        for (source, _group), counter in evidence.group_states.items():
            if state in counter and any(conflicts(state, other) for other in counter):
                others = ",".join(sorted(s for s in counter if s != state))
                return Judgement(
                    "contradicted",
                    source,
                    others,
                    f"not all are {state} {_where(evidence, source)}: {others}",
                )
    sources = frozenset(s for (s, _), states in evidence.scope_states.items() if state in states)
    said = evidence.all_states.get(state)
    if said is None:
        implied = [evidence.all_states[s] for s in evidence.all_states if state_holds(state, {s})]
        said = min(implied) if implied else None
    if said is not None:
        return Judgement("supported", said, state, f"reported {_where(evidence, said)}", sources)
    clashing = sorted(s for s in evidence.all_states if conflicts(state, s))
    if negated or not clashing:
        return None  # nothing the tools said of this axis
    shown = ",".join(clashing[:5])
    first = evidence.all_states[clashing[0]]
    return Judgement("contradicted", first, shown, f"the tools report {shown}, not {state}")


def exp_mean(logprobs: Sequence[float]) -> float | None:
    """exp of the mean token log-probability, clipped to [0, 1]; None when there are none."""
    finite = [p for p in logprobs if math.isfinite(p)]
    if not finite:
        return None
    return min(1.0, max(0.0, math.exp(sum(finite) / len(finite))))
