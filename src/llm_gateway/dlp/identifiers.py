"""What a personal identifier looks like when it is real, not just shaped like one.

Each check takes a candidate that a pattern matched and applies what the
format's owner guarantees: card brands and the Luhn digit, the numbers the
SSA never issues, IBAN country lengths and mod-97, libphonenumber's plans,
address checksums. They are registered by name in ``validators``.

Every check bounds its work: a value longer than its format allows is
rejected before anything else is done with it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date

import phonenumbers

from llm_gateway.dlp.checksums import (
    bitcoin_base58_valid,
    bitcoin_bech32_valid,
    eip55_valid,
    iban_valid,
    luhn_valid,
)

_SEPARATORS = re.compile(r"[ \-.]")
_NON_DIGITS = re.compile(r"\D")


def _digits(value: str) -> str:
    return _NON_DIGITS.sub("", value)


# --- payment cards -----------------------------------------------------------

# (first digits, allowed lengths) per brand; a number must fit one of them.
_CARD_BRANDS: tuple[tuple[tuple[str, ...], frozenset[int]], ...] = (
    (("4",), frozenset({13, 16, 19})),  # Visa
    (tuple(str(p) for p in range(51, 56)) + tuple(str(p) for p in range(2221, 2721)),
     frozenset({16})),  # Mastercard
    (("34", "37"), frozenset({15})),  # American Express
    (("6011", "65", *(str(p) for p in range(644, 650))), frozenset(range(16, 20))),  # Discover
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"),
     frozenset(range(14, 20))),  # Diners Club
    (tuple(str(p) for p in range(3528, 3590)), frozenset(range(16, 20))),  # JCB
    (("62",), frozenset(range(16, 20))),  # UnionPay
    (("2200", "2201", "2202", "2203", "2204"), frozenset(range(16, 20))),  # Mir
    (("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"),
     frozenset(range(12, 20))),  # Maestro
)  # fmt: skip


def credit_card(value: str) -> int:
    """Brand prefix and length, Luhn, consistent separators, groups of three or more digits.

    A candidate may have taken a trailing group that is not part of the number
    (the CVV in "4111 1111 1111 1111 123"): if the whole fails, the number
    without its last group is tried, and the finding covers only that.
    """
    if _card_number(value):
        return len(value)
    groups = _SEPARATORS.split(value)
    if len(groups) > 1:
        shorter = value[: len(value) - len(groups[-1]) - 1]
        if _card_number(shorter):
            return len(shorter)
    return 0


def _card_number(value: str) -> bool:
    if len(value) > 32:
        return False
    separators = set(_SEPARATORS.findall(value))
    if len(separators) > 1:
        return False
    if separators and min(len(group) for group in _SEPARATORS.split(value)) < 3:
        return False
    digits = _digits(value)
    if len(set(digits)) == 1:
        return False
    brand_ok = any(
        digits.startswith(prefixes) and len(digits) in lengths for prefixes, lengths in _CARD_BRANDS
    )
    return brand_ok and luhn_valid(digits)


def luhn(value: str) -> bool:
    digits = _digits(value)
    return len(value) <= 64 and len(digits) >= 2 and luhn_valid(digits)


# --- US identifiers ----------------------------------------------------------

# Numbers that are valid in form but printed everywhere as examples, so a match
# is far more likely a sample than a person. 078-05-1120 was printed on a sample
# card sold in wallets in 1938 and used by thousands; 219-09-9999 appeared in a
# Social Security Administration pamphlet; 457-55-5462 was published in an
# identity-protection advertisement; 123-45-6789 is the placeholder every form
# shows. Presidio rejects the same kind of values for the same reason.
_SSN_EXAMPLES = frozenset({"123456789", "078051120", "219099999", "457555462", "987654320"})


def ssn(value: str) -> bool:
    """US Social Security number: the SSA never issues area 000, 666 or 900-999,
    group 00 or serial 0000, and we reject well-known examples and one repeated digit."""
    digits = _digits(value)
    if len(value) > 11 or len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    return digits not in _SSN_EXAMPLES and len(set(digits)) > 1


def itin(value: str) -> bool:
    """US ITIN: nine digits, starting with 9, digits 4-5 in 50-65, 70-88, 90-92 or 94-99."""
    digits = _digits(value)
    if len(value) > 11 or len(digits) != 9 or digits[0] != "9":
        return False
    group = int(digits[3:5])
    return 50 <= group <= 65 or 70 <= group <= 88 or 90 <= group <= 92 or 94 <= group <= 99


# --- banking, network, contact -----------------------------------------------


def iban(value: str) -> bool:
    if len(value) > 50:
        return False
    return iban_valid(_SEPARATORS.sub("", value).upper())


def ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def ipv6(value: str) -> bool:
    """A valid IPv6 address with enough groups to be one on purpose.

    ``::1`` and ``::`` identify nobody, and ``a::b`` or ``A::B`` is far more
    often code than an address, so two groups need one of three hex digits or more.
    """
    if len(value) > 45 or value.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    groups = [group for group in value.split(":") if group]
    return len(groups) >= 3 or (len(groups) == 2 and max(len(g) for g in groups) >= 3)


def mac(value: str) -> bool:
    """A MAC address other than all-zero or broadcast, which identify no device."""
    hex_digits = re.sub(r"[:.\-]", "", value).lower()
    return len(hex_digits) == 12 and hex_digits not in ("000000000000", "ffffffffffff")


_FILE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "css", "js"})


def email(value: str) -> bool:
    """RFC 5321 length limits (local part 64, label 63, top-level domain here 24, all 254),
    no empty labels, and not a retina asset like ``logo@2x.png``."""
    if len(value) > 254:
        return False
    local, _, domain = value.rpartition("@")
    if not local or len(local) > 64 or local[0] == "." or local[-1] == "." or ".." in local:
        return False
    labels = domain.split(".")
    if max(len(label) for label in labels) > 63 or len(labels[-1]) > 24:
        return False
    return labels[-1].lower() not in _FILE_SUFFIXES


# Regions tried for numbers written with a national trunk prefix (a leading 0).
_TRUNK_REGIONS = ("GB", "DE", "FR", "IN", "IL", "BR", "AU", "IT", "ES", "NL")
_NOT_A_PHONE = re.compile(
    r"\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}"  # 2024-01-15
    r"|\d{1,2}[\-/.]\d{1,2}[\-/.]\d{2,4}$"  # 15.01.2024
    r"|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"  # 10.0.0.1
    r"|\d{3}-\d{2}-\d{4}$"  # the SSN layout
)
_EXTENSION = re.compile(r"\s*(?:x|ext\.?)\s*\d+$")
_LAST_GROUP = re.compile(r"\s+(?:(?:x|ext\.?)\s*\d+|\d{1,3})$")


def phone(value: str) -> int:
    """The longest leading part of ``value`` that libphonenumber calls a valid number.

    How the number is written picks the regions worth asking about, which is
    both faster and more precise than asking every region about every number:
    ``+`` or ``00`` means international; a leading ``0`` is a national trunk
    prefix (Europe, India, Brazil, Australia...); otherwise only the North
    American plan (ten digits, or eleven starting with 1). An extension
    ("x123", "ext. 12") does not count towards the digits.
    Dates, dotted quads and the SSN layout (3-2-4) are rejected first. A
    short trailing group the candidate pattern took after a space
    ("555-123-4567 42") is dropped, one at a time, until the rest is valid;
    longer groups are part of the number, so "3052 776922 0595" (a card that
    failed its Luhn check) is not re-read as a phone number without its end.
    """
    if len(value) > 48 or _NOT_A_PHONE.match(value):
        return 0
    candidate = value
    while True:
        digits = _digits(_EXTENSION.sub("", candidate))
        if len(digits) < 7:
            return 0
        if len(digits) <= 15 and _valid_somewhere(candidate, digits):
            return len(candidate)
        shorter = _LAST_GROUP.sub("", candidate)
        if shorter == candidate:
            return 0
        candidate = shorter


def _valid_somewhere(value: str, digits: str) -> bool:
    if value.startswith("+"):
        return _valid_phone(value, None)
    if digits.startswith("00"):
        return _valid_phone("+" + digits[2:], None)
    if digits.startswith("0"):
        return any(_valid_phone(value, region) for region in _TRUNK_REGIONS)
    if len(digits) == 10 or (len(digits) == 11 and digits.startswith("1")):
        return _valid_phone(value, "US")
    return False


def _valid_phone(value: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


# --- crypto wallets ----------------------------------------------------------


def bitcoin(value: str) -> bool:
    if len(value) > 90:
        return False
    if value[:3].lower() == "bc1":
        return bitcoin_bech32_valid(value)
    return bitcoin_base58_valid(value)


def eip55(value: str) -> bool:
    return len(value) == 42 and eip55_valid(value)


# --- dates of birth ----------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")),
        start=1,
    )
    for name in names
}  # fmt: skip
_WORDS = re.compile(r"[a-z]+|\d+")


def date_of_birth(value: str) -> bool:
    """A real calendar date between 1900 and today (either day/month order for numeric dates)."""
    if len(value) > 40:
        return False
    tokens = _WORDS.findall(value.lower())
    numbers = [int(t) for t in tokens if t.isdigit()]
    months = [_MONTHS[t] for t in tokens if t in _MONTHS]
    candidates: list[tuple[int, int, int]] = []
    if months and len(numbers) == 2:
        day, year = (numbers[0], numbers[1]) if numbers[1] > 31 else (numbers[1], numbers[0])
        candidates.append((year, months[0], day))
    elif len(numbers) == 3:
        first, second, third = numbers
        if first > 31:
            candidates.append((first, second, third))
        else:
            candidates += [(third, first, second), (third, second, first)]
    today = date.today()
    for year, month, day in candidates:
        try:
            when = date(year, month, day)
        except ValueError:
            continue
        if year >= 1900 and when <= today:
            return True
    return False
