"""Values in the forms people and tools write them, reduced to one form for comparison.

Numbers ("1,234.5", "seven", "1.2k"), units (so that "2 GiB" meets
``SizeInMiB: 2048`` and "1.5 hours" meets ``duration_minutes: 90``), dates
(ISO, "March 3, 2024", "3 Mar", "03/03/2024") and times ("2:30 PM", "14:30"),
words to crude stems (so that "instances" meets ``Instances``).

Every pattern here is a run of character classes with bounded or single
unbounded repetition and no nested quantifiers, so matching is linear in the
text even for a megabyte of tool output.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
    "both": 2,
}  # fmt: skip
# "one" is left out: "one of them", "the one that" are not counts worth checking.

SCALES: dict[str, float] = {
    "k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "million": 1e6, "mn": 1e6,
    "b": 1e9, "bn": 1e9, "billion": 1e9,
}  # fmt: skip

# unit word -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "ms": ("time", 1e-3), "msec": ("time", 1e-3), "millisecond": ("time", 1e-3),
    "milliseconds": ("time", 1e-3), "millis": ("time", 1e-3),
    "s": ("time", 1.0), "sec": ("time", 1.0), "secs": ("time", 1.0), "second": ("time", 1.0),
    "seconds": ("time", 1.0),
    "min": ("time", 60.0), "mins": ("time", 60.0), "minute": ("time", 60.0),
    "minutes": ("time", 60.0),
    "h": ("time", 3600.0), "hr": ("time", 3600.0), "hrs": ("time", 3600.0),
    "hour": ("time", 3600.0), "hours": ("time", 3600.0),
    "d": ("time", 86400.0), "day": ("time", 86400.0), "days": ("time", 86400.0),
    "week": ("time", 604800.0), "weeks": ("time", 604800.0),
    "byte": ("size", 1.0), "bytes": ("size", 1.0),
    "kb": ("size", 1e3), "kib": ("size", 1024.0),
    "mb": ("size", 1e6), "mib": ("size", 1024.0**2),
    "gb": ("size", 1e9), "gib": ("size", 1024.0**3),
    "tb": ("size", 1e12), "tib": ("size", 1024.0**4),
    "g": ("size", 1024.0**3),  # redis and ps write "1.00G"
    # Kubernetes quantities: 16Gi, 31230Mi
    "ki": ("size", 1024.0), "mi": ("size", 1024.0**2), "gi": ("size", 1024.0**3),
    "ti": ("size", 1024.0**4),
    "km/h": ("speed", 1 / 3.6), "kph": ("speed", 1 / 3.6), "kmh": ("speed", 1 / 3.6),
    "mph": ("speed", 0.44704), "m/s": ("speed", 1.0),
    # Temperatures are affine: in_unit converts them; the factor is unused.
    "°c": ("temperature", 1.0), "°f": ("temperature", 1.0), "℃": ("temperature", 1.0),
    "℉": ("temperature", 1.0), "celsius": ("temperature", 1.0),
    "fahrenheit": ("temperature", 1.0),
}  # fmt: skip
_FAHRENHEIT = frozenset({"°f", "℉", "fahrenheit", "f"})
_TEMPERATURE_KEYS = {"c": "°c", "f": "°f", "celsius": "°c", "fahrenheit": "°f"}
_BINARY = {"kb": "kib", "mb": "mib", "gb": "gib", "tb": "tib"}

_UNIT_ALTERNATION = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
UNIT_AFTER = re.compile(rf"[ \t]?({_UNIT_ALTERNATION})(?![A-Za-z0-9])", re.IGNORECASE)

MONTHS: dict[str, int] = {}
for _index, _name in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"), start=1):  # fmt: skip
    MONTHS[_name] = _index
    MONTHS[_name[:3]] = _index
MONTHS["sept"] = 9

_WORD_SPLIT = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def parse_number(text: str) -> float | None:
    """The number in ``text`` ("1,234.50", "-3", "seven", "twenty-five"), or None."""
    word = text.strip().lower()
    if word in NUMBER_WORDS:
        return float(NUMBER_WORDS[word])
    if "-" in word[1:]:
        tens, _, unit = word.partition("-")
        if tens in NUMBER_WORDS and unit in NUMBER_WORDS and NUMBER_WORDS[unit] < 10:
            return float(NUMBER_WORDS[tens] + NUMBER_WORDS[unit])
    cleaned = word.replace(",", "").replace("_", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def decimals(text: str) -> int:
    """How many digits the written number has after its decimal point (its precision)."""
    digits = text.replace(",", "")
    return len(digits) - digits.index(".") - 1 if "." in digits else 0


def unit_of(word: str) -> tuple[str, float] | None:
    """The unit's dimension and factor, for a unit word ("GiB", "hours"), or None."""
    return UNITS.get(word.lower())


def unit_of_key(key: str) -> str | None:
    """The unit a JSON key names by its suffix (``latency_ms``, ``SizeInMiB``, ``ttl``)."""
    low = key.lower()
    if low == "ttl" or low.endswith("_ttl"):
        return "s"
    for suffix in ("mib", "gib", "kib", "tib", "bytes", "seconds", "minutes", "hours", "days",
                   "millis", "weeks"):  # fmt: skip
        if low.endswith(suffix):
            return suffix
    words = key_words(key)
    if len(words) > 1 and words[-1] in UNITS:
        return words[-1]
    if (
        len(words) > 1
        and words[-1] in _TEMPERATURE_KEYS
        and words[0].startswith(("temp", "feels", "high", "low", "min", "max", "dew"))
    ):
        return _TEMPERATURE_KEYS[words[-1]]  # temp_c, feels_like_f, high_c
    return None


def in_unit(value: float, unit: str, other: str) -> float | None:
    """``value`` given in ``unit``, expressed in ``other`` (None across dimensions)."""
    here, there = UNITS.get(unit.lower()), UNITS.get(other.lower())
    if here is None or there is None or here[0] != there[0]:
        return None
    if here[0] == "temperature":
        celsius = (value - 32) * 5 / 9 if unit.lower() in _FAHRENHEIT else value
        return celsius * 9 / 5 + 32 if other.lower() in _FAHRENHEIT else celsius
    return value * here[1] / there[1]


def conversions(value: float, unit: str) -> Iterator[tuple[float, str]]:
    """``value`` in every unit of its dimension (decimal and binary readings of "GB")."""
    low = unit.lower()
    readings = [low]
    if low in _BINARY:
        readings.append(_BINARY[low])
    for reading in readings:
        dimension = UNITS[reading][0]
        for other, (dim, _) in UNITS.items():
            if dim == dimension:
                converted = in_unit(value, reading, other)
                if converted is not None:
                    yield converted, other


def key_words(key: str) -> list[str]:
    """A JSON key's words, lower-cased: ``PublicIpAddress`` -> public, ip, address."""
    return [w.lower() for w in _WORD_SPLIT.findall(key)]


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A crude stem, enough to meet "instances" with "Instance" and "statuses" with "status"."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ses", "xes", "ches", "shes")) and not w.endswith("uses"):
        return w[:-2]
    if w.endswith("uses") and len(w) > 5:
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


@dataclass(frozen=True, slots=True)
class Date:
    """A calendar date; ``year`` is None when the text left it out ("3 Mar")."""

    year: int | None
    month: int
    day: int

    def iso(self) -> str:
        year = f"{self.year:04d}" if self.year is not None else "----"
        return f"{year}-{self.month:02d}-{self.day:02d}"


def make_date(year: int | None, month: int, day: int) -> Date | None:
    """The date, or None when month or day is out of range (so "13/45/2024" is no date)."""
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    if year is not None and not 1900 <= year <= 2200:
        return None
    return Date(year, month, day)


# ISO dates, also at the start of an ISO timestamp; 2024/03/03 too.
ISO_DATE = re.compile(r"(?<![0-9])(\d{4})[-/](\d{2})[-/](\d{2})(?![0-9])")
# 03/03/2024 (read both ways: US month-first and day-first).
SLASH_DATE = re.compile(r"(?<![0-9/])(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?![0-9])")
# March 3, 2024 / Mar 3 / March 3rd
MONTH_DAY = re.compile(
    r"(?<![A-Za-z])([A-Za-z]{3,9})\.?[ \t]{1,3}(\d{1,2})(?:st|nd|rd|th)?(?![0-9]|:[0-9])"
    r"(?:,?[ \t]{1,3}(\d{4})(?![0-9]))?"
)
# 3 March 2024 / 3 Mar / 3rd of March
DAY_MONTH = re.compile(
    r"(?<![0-9])(\d{1,2})(?:st|nd|rd|th)?[ \t]{1,3}(?:of[ \t]{1,3})?([A-Za-z]{3,9})(?![A-Za-z])\.?"
    r"(?:,?[ \t]{1,3}(\d{4})(?![0-9]))?"
)


def find_dates(text: str) -> Iterator[tuple[int, int, list[Date]]]:
    """Every date in ``text``: span and its readings (two for an ambiguous 03/04/2024)."""
    for match in ISO_DATE.finditer(text):
        date = make_date(int(match[1]), int(match[2]), int(match[3]))
        if date is not None:
            yield match.start(), match.end(), [date]
    for match in SLASH_DATE.finditer(text):
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        readings = [
            d for d in (make_date(year, first, second), make_date(year, second, first)) if d
        ]
        if readings:
            yield match.start(), match.end(), readings
    for match in MONTH_DAY.finditer(text):
        month = MONTHS.get(match[1].lower())
        if month is None or (match[1].lower() == "may" and not match[1][0].isupper()):
            continue
        date = make_date(int(match[3]) if match[3] else None, month, int(match[2]))
        if date is not None:
            yield match.start(), match.end(), [date]
    for match in DAY_MONTH.finditer(text):
        month = MONTHS.get(match[2].lower())
        if month is None or (match[2].lower() == "may" and not match[2][0].isupper()):
            continue
        date = make_date(int(match[3]) if match[3] else None, month, int(match[1]))
        if date is not None:
            yield match.start(), match.end(), [date]


# 14:30, 9:00, 2:30 PM, 12:00:01; the T09:00 of an ISO timestamp.
CLOCK = re.compile(
    r"(?<![0-9:.])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?![0-9:])"
    r"(?:[ \t]?([AaPp])\.?[Mm]\.?(?![A-Za-z]))?"
)
HOUR_AMPM = re.compile(r"(?<![0-9:.])(\d{1,2})[ \t]?([AaPp])\.?[Mm]\.?(?![A-Za-z])")
# "from 2 to 3:30 PM", "2-4pm": the range's first hour takes its last one's AM or PM
HOUR_RANGE = re.compile(
    r"(?<![0-9:.])(\d{1,2})[ \t]{0,2}(?:to|-|\u2013)[ \t]{0,2}\d{1,2}(?::[0-5]\d)?[ \t]?"
    r"([AaPp])\.?[Mm]\.?(?![A-Za-z])"
)


def to_24h(hour: int, ampm: str | None) -> int | None:
    """The hour on a 24-hour clock, or None when it is no hour."""
    if ampm:
        if not 1 <= hour <= 12:
            return None
        pm = ampm.lower() == "p"
        return (hour % 12) + (12 if pm else 0)
    return hour if 0 <= hour <= 23 else None


def find_times(text: str, ranges: bool = False) -> Iterator[tuple[int, int, tuple[int, int]]]:
    """Every clock time in ``text``: span and (hour, minute) on a 24-hour clock (and with
    ``ranges``, the bare first hour of a range: the 2 of "2 to 3:30 PM")."""
    for match in CLOCK.finditer(text):
        hour = to_24h(int(match[1]), match[4])
        if hour is not None:
            yield match.start(), match.end(), (hour, int(match[2]))
    for match in HOUR_AMPM.finditer(text):
        hour = to_24h(int(match[1]), match[2])
        if hour is not None:
            yield match.start(), match.end(), (hour, 0)
    for match in HOUR_RANGE.finditer(text) if ranges else ():
        hour = to_24h(int(match[1]), match[2])
        if hour is not None:
            yield match.start(1), match.end(1), (hour, 0)


# A number not inside a word or id ("i-3abc", "t3", "us-east-1"), with its sign.
NUMBER = re.compile(r"(?<![A-Za-z0-9_.:/#])(?<![A-Za-z0-9]-)(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
_LETTERS = re.compile(r"[A-Za-z]{1,12}")
_SCALE_WORD = re.compile(r"[ \t](thousand|million|billion|bn|mn)(?![A-Za-z])", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(
    r"[ \t]?(usd|eur|gbp|chf|jpy|dollars?|euros?|pounds?)(?![A-Za-z])", re.IGNORECASE
)
_HYPHEN_UNIT = re.compile(r"-([A-Za-z]{1,12})(?![A-Za-z])")
_PERCENT_AFTER = re.compile(r"[ \t]?(%|percent(?![A-Za-z])|pct(?![A-Za-z]))", re.IGNORECASE)
NUMBER_WORD = re.compile(
    r"(?<![A-Za-z-])(" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
    r"(?:-(one|two|three|four|five|six|seven|eight|nine))?(?![A-Za-z-])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class NumberToken:
    """A number as written: its span, value and what was written around it."""

    start: int
    end: int
    value: float
    text: str
    unit: str | None = None  # a key of UNITS
    scaled: bool = False  # "1.2k", "3 million": written rounded
    percent: bool = False
    currency: bool = False
    word: bool = False  # "seven"
    decimals: int = 0


# In tool output only: a value after "key:" ("used_memory:1073741824", "checkout:57").
KEYED_NUMBER = re.compile(r"(?<=[A-Za-z_]:)(-?)(\d+)(\.\d+)?(?![0-9:]|\.[0-9])")


def find_numbers(text: str, words: bool = False, keyed: bool = False) -> Iterator[NumberToken]:
    """The numbers in ``text`` (number words too when ``words``; "key:value" when ``keyed``)."""
    for match in NUMBER.finditer(text):
        token = _number_token(text, match)
        if token is not None:
            yield token
    if keyed:
        for match in KEYED_NUMBER.finditer(text):
            token = _number_token(text, match)
            if token is not None:
                yield token
    if words:
        for match in NUMBER_WORD.finditer(text):
            value = parse_number(match.group())
            if value is None:
                continue
            yield _with_suffixes(
                text, NumberToken(match.start(), match.end(), value, match.group(), word=True)
            )


def _number_token(text: str, match: re.Match[str]) -> NumberToken | None:
    start, end = match.span()
    after = text[end : end + 2]
    if len(after) == 2 and after[0] in ".:" and after[1].isdigit():
        return None  # an IP address, a version, a clock time
    value = float(match[2].replace(",", "") + (match[3] or ""))
    if match[1]:
        value = -value
    places = len(match[3]) - 1 if match[3] else 0
    token = NumberToken(start, end, value, match.group(), decimals=places)
    letters = _LETTERS.match(text, end)
    if letters is not None:
        run = letters.group()
        low = run.lower()
        if (low in SCALES and low not in ("m", "b")) or run in ("M", "B", "bn", "mn"):
            scale = SCALES[low]
            return _with_suffixes(
                text,
                NumberToken(
                    start,
                    letters.end(),
                    value * scale,
                    text[start : letters.end()],
                    scaled=True,
                    decimals=token.decimals,
                ),
            )
        if low not in UNITS and low not in ("st", "nd", "rd", "th", "x", "usd", "eur", "gbp"):
            return None  # "3abc": part of an id
    return _with_suffixes(text, token)


def _with_suffixes(text: str, token: NumberToken) -> NumberToken:
    """The token with its scale word, unit, percent sign and currency, as written around it."""
    end, value, scaled = token.end, token.value, token.scaled
    scale = _SCALE_WORD.match(text, end)
    if scale is not None:
        value *= SCALES[scale[1].lower()]
        end, scaled = scale.end(), True
    unit: str | None = None
    percent = currency = False
    if (m := _PERCENT_AFTER.match(text, end)) is not None:
        percent, end = True, m.end()
    elif (m := _CURRENCY_AFTER.match(text, end)) is not None:
        currency, end = True, m.end()
    elif (m := UNIT_AFTER.match(text, end)) is not None or (
        (m := _HYPHEN_UNIT.match(text, end)) is not None and m[1].lower() in UNITS
    ):
        unit, end = m[1].lower(), m.end()
    before = text[max(0, token.start - 2) : token.start]
    if before.endswith(("$", "€", "£", "¥")) or before.rstrip().endswith(("$", "€", "£")):
        currency = True
    return NumberToken(
        token.start, end, value, text[token.start : end], unit, scaled, percent, currency,
        token.word, token.decimals,
    )  # fmt: skip


_NUMBER_OR_A = r"(\d{1,4}|an?|one|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
# "1 hour 15 minutes", "an hour and 16 minutes", "2 days, 4 hours", "1 h 15 min"
COMPOUND_DURATION = re.compile(
    r"(?<![A-Za-z0-9])" + _NUMBER_OR_A + r"[ \t]?(days?|hours?|hrs?|h|minutes?|mins?|min)"
    r"(?:,?[ \t]+and)?[ \t,]+(\d{1,2})[ \t]?(hours?|hrs?|h|minutes?|mins?|min|seconds?|secs?|s)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# kubectl's and ps's ages: 3d4h, 2m, 1h30m, 45s
COMPACT_DURATION = re.compile(
    r"(?<![A-Za-z0-9.:])(?=\d)(?:(\d{1,4})d)?(?:(\d{1,4})h)?(?:(\d{1,4})m)?(?:(\d{1,4})s)?"
    r"(?![A-Za-z0-9])"
)


_COMPACT_HINT = re.compile(r"\d[dhms](?![A-Za-z])|\d[dh]\d")


def find_compound_durations(text: str) -> Iterator[NumberToken]:
    """Durations written in two units, as one number of seconds."""
    for match in COMPOUND_DURATION.finditer(text):
        first = parse_number(match[1]) if match[1].lower() not in ("a", "an", "one") else 1.0
        big, small = unit_of(_unit_word(match[2])), unit_of(_unit_word(match[4]))
        if first is None or big is None or small is None or big[1] <= small[1]:
            continue
        seconds = first * big[1] + int(match[3]) * small[1]
        yield NumberToken(match.start(), match.end(), seconds, match.group(), unit="s")


def find_compact_durations(text: str) -> Iterator[tuple[int, float]]:
    """kubectl-style ages ("3d4h", "2m"): (start, seconds)."""
    if _COMPACT_HINT.search(text) is None:
        return
    for match in COMPACT_DURATION.finditer(text):
        parts = [match[i] for i in range(1, 5)]
        if not any(parts) or match.group() == "":
            continue
        seconds = sum(int(p) * f for p, f in zip(parts, (86400, 3600, 60, 1), strict=True) if p)
        yield match.start(), float(seconds)


def _unit_word(word: str) -> str:
    low = word.lower()
    return {"h": "h", "hrs": "hrs", "hr": "hr"}.get(low, low)


def word_set(text: str) -> frozenset[str]:
    """The words of a space-separated list (for the module's word lists)."""
    return frozenset(text.split())
