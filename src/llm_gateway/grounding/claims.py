"""The answer's checkable claims: ids, addresses, dates, times, numbers, states and names.

Each claim keeps what the checker needs to judge it: its value in comparable
form and its subject, the words around it ("7 *instances*", "the *total* is
$540", "*CPU* peaked at 93%") that say which of the tool's values it is about.
Also the cues that change how it is judged: a hedge of rounding ("about",
"~"), a comparison ("$1,200 *higher*"), a total ("*in total*"), a quantifier
("*all* pods"), a negation ("*not* running").

Order matters: identifiers and dates are found first, and the numbers inside
them ("the 3 inside i-3abc", the 2024 of a date) are not claims of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from llm_gateway.grounding.identifiers import PR_NUMBER, Spans, find_identifiers
from llm_gateway.grounding.model import Kind
from llm_gateway.grounding.normalize import (
    MONTHS,
    NumberToken,
    find_compound_durations,
    find_dates,
    find_numbers,
    find_times,
    parse_number,
    stem,
    word_set,
)
from llm_gateway.grounding.states import ANSWER_STATES, state_class

MAX_CLAIMS = 2_000

STOPWORDS = word_set(
    "a an the of in on at to for by with from and or but is are was were be been being "
    "has have had it its it's this that these those there their they them you your we our "
    "i as so than then which who what when where all each every both any some no not only "
    "just about around roughly approximately nearly almost over under up down out into "
    "per currently now still also right last first next other another more most less few"
)
APPROX = word_set(
    "about around roughly approximately approx nearly almost circa some ~ over under "
    "approx. close around"
)
COMPARATIVE = word_set(
    "left remaining leaving leaves free spare unused "
    "more higher lower less fewer increase increased decrease decreased rise rose drop "
    "dropped up down difference slower faster longer shorter grew fell jumped gap than "
    "increase other rest net"
)
TOTALS = word_set("total totals sum altogether combined overall together all")
AVERAGES = word_set("average averaged mean avg averages")
DOWNWARD = word_set("down fell dropped lost decreased declined lower minus below negative")
_PHRASE_ENDS = word_set("at of in on for with from to by and or but per than since")
QUANTIFIERS = word_set("all every each both")
NEGATIONS = word_set(
    "not no never without isn't aren't wasn't weren't hasn't haven't doesn't don't didn't nor"
)
_NAME_SKIP = word_set(
    "The This That These Those Your You Yes No It Its There Here We Our They Their I A An "
    "All Both Each Every Of In On At For And But Or So If When While After Before Since "
    "Also Note However Then Last Next First Monday Tuesday Wednesday Thursday Friday "
    "Saturday Sunday Today Tomorrow Yesterday UTC GMT PR Order Invoice Ticket Pod "
    "Instance Status"
)

_WORDS = re.compile(r"[A-Za-z~][A-Za-z0-9'~-]{0,40}")
_CLAUSE_BREAK = re.compile(r"[,;:()\u2014\u2013]|\s-\s|\n")
_STATE_WORD = re.compile(r"(?<![A-Za-z0-9-])([A-Za-z][A-Za-z-]{1,30})(?![A-Za-z0-9-])")
_NO_NOUN = re.compile(
    r"(?<![A-Za-z])(?:no|zero)[ \t]+(?:[a-z]{2,20}[ \t]+)?([a-z]{3,30}s)(?![A-Za-z])",
    re.IGNORECASE,
)
# acme-prod-logs, payments-api-canary: a name of lower-case words joined by hyphens (with a
# digit it is an identifier already); a claim only when it is a near miss of a tool's name.
_SLUG = re.compile(r"(?<![A-Za-z0-9_./@-])[a-z][a-z0-9]{1,30}(?:-[a-z][a-z0-9]{0,30}){2,6}"
                   r"(?![A-Za-z0-9_@-])")  # fmt: skip
# "11:42 AM EST", "9:00 CET", "4 PM New York time", "10:00 local time", "08:00 UTC+1"
_ZONE_AFTER = re.compile(
    r"[ \t]*\(?(?:(?!GMT|UTC)[A-Z]{1,4}[SD]?T(?![A-Za-z])|(?:UTC|GMT)[+-]\d|local(?![A-Za-z])|"
    r"(?:[A-Z][a-z]{2,15}[ \t]){1,2}time(?![A-Za-z])|in[ \t][A-Z][a-z]{2,15})"
)
_BOUND_BEFORE = re.compile(
    r"(?<![A-Za-z])(?:over|above|under|below|more[ \t]than|less[ \t]than|at[ \t]least|"
    r"at[ \t]most|exceeding|exceeds)[ \t]+[$\u20ac\u00a3]?\Z",
    re.IGNORECASE,
)
_WEEKDAY_BEFORE = re.compile(
    r"(?<![A-Za-z])(mon|tue|wed|thu|fri|sat|sun)[a-z]{0,6}\.?,?[ \t]{1,3}(?:the[ \t]+)?\Z",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<![A-Za-z])[A-Z][a-z]{1,20}(?:[ \t][A-Z][a-z]{1,20}){1,3}(?![A-Za-z])")


@dataclass(slots=True)
class Candidate:
    """A claim before it is judged."""

    start: int
    end: int
    text: str
    kind: Kind
    value: Any  # str for ids, list[Date] for dates, (h, m) for times, NumberToken, state
    subject: frozenset[str] = frozenset()
    near: frozenset[str] = frozenset()  # the subject's words right next to the claim
    before: tuple[str, ...] = ()  # the clause's words before the claim, lower-cased
    after: tuple[str, ...] = ()
    cues: set[str] = field(default_factory=set)  # approx, compare, total, average, all, not
    sentence: int = 0


def _taken(spans: Spans, start: int, end: int) -> bool:
    return spans.overlaps(start, end)


def _clause_words(text: str, start: int, end: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of the claim's clause before it (last six) and after it (first three)."""
    left = text[max(0, start - 80) : start]
    breaks = list(_CLAUSE_BREAK.finditer(left))
    if breaks:
        left = left[breaks[-1].end() :]
    for mark in (". ", "! ", "? "):
        if mark in left:
            left = left.rsplit(mark, 1)[1]
    right = text[end : end + 60]
    cut = _CLAUSE_BREAK.search(right)
    if cut:
        right = right[: cut.start()]
    for mark in (".", "!", "?"):
        right = right.split(mark + " ", 1)[0]
    before = tuple(w.lower() for w in _WORDS.findall(left))[-6:]
    after = tuple(w.lower() for w in _WORDS.findall(right))[:6]
    if after[:1] == ("of",) and after[1:2] in (("them",), ("these",), ("those",), ("which",)):
        after = after[2:]  # "three of them database timeouts": the count is of timeouts
    after = after[:4]
    return before, after


def _wordlike(word: str) -> bool:
    """A word, or a letter-and-digits name of a key ("p95", "ipv4")."""
    return word.isalpha() or (word[:1].isalpha() and word.isalnum() and len(word) <= 8)


def _written_cues(candidate: Candidate, text: str) -> None:
    """Cues in how the claim is written: a bound, an ordinal, a time zone, a weekday."""
    if _BOUND_BEFORE.search(text, max(0, candidate.start - 16), candidate.start):
        candidate.cues.add("bound")  # "any charge over $100": a threshold, not a value
    if text[candidate.end : candidate.end + 2].lower() in ("st", "nd", "rd", "th"):
        candidate.cues.add("ordinal")  # "on the 3rd"
    if candidate.kind == "time" and _ZONE_AFTER.match(text, candidate.end):
        candidate.cues.add("zone")
    if candidate.kind == "date" and (day := _WEEKDAY_BEFORE.search(text, 0, candidate.start)):
        candidate.cues.add("weekday:" + day[1].lower()[:3])


def _annotate(candidate: Candidate, text: str) -> Candidate:
    before, after = _clause_words(text, candidate.start, candidate.end)
    candidate.before, candidate.after = before, after
    near = set(before[-4:]) | set(after[:2])
    if set(before[-2:]) & APPROX or "~" in text[max(0, candidate.start - 2) : candidate.start]:
        candidate.cues.add("approx")
    if near & COMPARATIVE or "from" in before[-3:]:
        candidate.cues.add("compare")
    if (set(before) | set(after)) & TOTALS or " in all" in text[candidate.end : candidate.end + 8]:
        candidate.cues.add("total")
    if (set(before) | set(after)) & AVERAGES:
        candidate.cues.add("average")
    if near & DOWNWARD:
        candidate.cues.add("down")
    _written_cues(candidate, text)
    if set(before) & QUANTIFIERS:  # "all the pods in payments are running": the clause's
        candidate.cues.add("all")
    if set(before[-3:]) & NEGATIONS or any(w.endswith("n't") for w in before[-3:]):
        candidate.cues.add("not")
    subject = [w for w in (*before[-4:], *after[:2]) if w not in STOPWORDS and _wordlike(w)]
    candidate.subject = frozenset(stem(w) for w in subject)
    following: list[str] = []
    for word in after[:4]:
        if word in _PHRASE_ENDS:
            break  # "$271 at today's rate": the rate is another noun's
        if word not in STOPWORDS and _wordlike(word):
            following.append(word)
    leading = [w for w in before[-2:] if w not in STOPWORDS and _wordlike(w)]
    candidate.near = frozenset(stem(w) for w in (*leading, *following[:3]))
    return candidate


def extract(text: str) -> list[Candidate]:
    """The checkable claims of ``text`` (an answer with its citation markers blanked)."""
    spans = Spans()
    found: list[Candidate] = []

    def add(candidate: Candidate) -> None:
        spans.add(candidate.start, candidate.end)
        found.append(_annotate(candidate, text))

    for ident in find_identifiers(text):
        add(Candidate(ident.start, ident.end, text[ident.start : ident.end], ident.kind,
                      ident.value))  # fmt: skip
    for match in PR_NUMBER.finditer(text):
        if not _taken(spans, *match.span()):
            add(Candidate(match.start(), match.end(), match.group(), "identifier",
                          f"#{match[1]}"))  # fmt: skip
    for start, end, readings in sorted(find_dates(text), key=lambda d: (d[0], -d[1])):
        if not _taken(spans, start, end):
            add(Candidate(start, end, text[start:end], "date", readings))
    for start, end, clock in find_times(text, ranges=True):
        if not _taken(spans, start, end):
            add(Candidate(start, end, text[start:end], "time", clock))
    for match in _SLUG.finditer(text):
        if not _taken(spans, *match.span()) and not set(match.group().split("-")) & STOPWORDS:
            slug = Candidate(match.start(), match.end(), match.group(), "identifier",
                             match.group().lower())  # fmt: skip
            slug.cues.add("slug")
            add(slug)
    _numbers(text, spans, add)
    _zeros(text, spans, add)
    _states(text, spans, add)
    _names(text, spans, add)
    found.sort(key=lambda c: c.start)
    return found[:MAX_CLAIMS]


def _numbers(text: str, spans: Spans, add: Any) -> None:
    for duration in find_compound_durations(text):
        if not _taken(spans, duration.start, duration.end):
            add(Candidate(duration.start, duration.end, duration.text, "number", duration))
    tokens = sorted(find_numbers(text, words=True), key=lambda t: (t.start, -t.end))
    for token in tokens:
        if _taken(spans, token.start, token.end):
            continue
        line_start = text.rfind("\n", 0, token.start) + 1
        if (
            not token.word
            and not text[line_start : token.start].strip()
            and text[token.end : token.end + 1] in (".", ")")
        ):
            continue  # "1. Foo": a list's numbering
        if token.word and token.text.lower() == "both" and not _noun_follows(text, token.end):
            continue
        if token.unit is None and not (token.currency or token.percent):
            token = _unit_a_word_later(text, token)
        kind: Kind = "number"
        if token.currency:
            kind = "money"
        elif token.percent:
            kind = "percent"
        elif token.unit is None and _noun_follows(text, token.end):
            kind = "count"
        add(Candidate(token.start, token.end, token.text, kind, token))


_TIME_NOUNS = word_set("days hours weeks minutes seconds months")


def _unit_a_word_later(text: str, token: NumberToken) -> NumberToken:
    """ "three sick days": a duration whose unit comes one word after the number."""
    words = _WORDS.findall(text[token.end : token.end + 40])[:2]
    if (
        len(words) == 2
        and words[1].lower() in _TIME_NOUNS
        and words[1].lower() != "months"
        and words[0].lower() not in STOPWORDS
        and words[0].isalpha()
        and parse_number(words[0]) is None  # "code 1 two hours ago": another number's unit
        and text[token.end : token.end + 40].lstrip().startswith(words[0])
    ):
        return replace(token, unit=words[1].lower())
    return token


def _noun_follows(text: str, end: int) -> bool:
    """Whether a plural-looking word follows (with at most one word between): a count's noun."""
    words = _WORDS.findall(text[end : end + 40])[:2]
    return any(w.lower().endswith("s") and w.lower() not in STOPWORDS for w in words)


def _zeros(text: str, spans: Spans, add: Any) -> None:
    """ "no instances", "zero returns": a count of nought of the noun that follows."""
    for match in _NO_NOUN.finditer(text):
        if _taken(spans, *match.span()):
            continue
        token = NumberToken(match.start(), match.end(), 0.0, match.group(), word=True)
        candidate = Candidate(match.start(), match.end(), match.group(), "count", token)
        candidate.cues.add("zero")
        add(candidate)
        candidate.subject = candidate.subject | {stem(match[1])}


_VERB_STATES = word_set("running processing starting stopping passed")
_STATE_FOLLOWERS = word_set(
    "and or but in on at for since now fine normally again too as with without until so "
    "yet already still right only"
)
_COPULAS = word_set("is are was were be been being remains remain stays stay")


def _is_state_use(text: str, match: re.Match[str], word: str) -> bool:
    """Whether the state word is said of something, not a verb with an object."""
    rest = text[match.end() : match.end() + 30]
    following = _WORDS.match(rest.lstrip(" \t")) if rest[:1] in (" ", "\t") else None
    next_word = following.group().lower() if following else ""
    if word in _VERB_STATES and next_word and next_word not in _STATE_FOLLOWERS:
        return False  # "running Postgres 15.4", "processing the batch"
    if word == "open" and next_word in ("the", "a", "an", "your", "it", "this", "that"):
        return False  # "open the console"
    if word in ("up", "down"):
        before = _WORDS.findall(text[max(0, match.start() - 30) : match.start()])[-1:]
        if not before or before[0].lower() not in _COPULAS:
            return False  # "went down to 3", "scaled up"
        if next_word and next_word not in _STATE_FOLLOWERS:
            return False
    return True


def _states(text: str, spans: Spans, add: Any) -> None:
    for match in _STATE_WORD.finditer(text):
        word = match[1].lower()
        if (word not in ANSWER_STATES and word not in ("up", "down")) or _taken(
            spans, *match.span()
        ):
            continue
        if not _is_state_use(text, match, word):
            continue
        add(Candidate(match.start(), match.end(), match[1], "state", state_class(word)))


def _names(text: str, spans: Spans, add: Any) -> None:
    for match in _NAME.finditer(text):
        words = match.group().split()
        offset = match.start()
        while words and (words[0] in _NAME_SKIP or words[0].lower() in MONTHS):
            offset += len(words[0]) + 1
            words = words[1:]
        while words and (words[-1] in _NAME_SKIP or words[-1].lower() in MONTHS):
            words = words[:-1]
        if len(words) < 2:
            continue
        name = " ".join(words)
        start = text.find(name, offset)
        if start < 0 or _taken(spans, start, start + len(name)):
            continue
        if re.match(r"[ \t]time(?![A-Za-z])", text[start + len(name) : start + len(name) + 6]):
            continue  # "New York time": a time zone, said of the time before it
        add(Candidate(start, start + len(name), name, "name", name.lower()))
