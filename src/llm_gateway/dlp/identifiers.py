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
    IBAN_LENGTHS,
    bitcoin_base58_valid,
    bitcoin_bech32_valid,
    eip55_valid,
    iban_valid,
    luhn_valid,
)

# Between the groups of a card number: one to three spaces, or one of - . / _ , | and
# the en dash (one kind per number).
_SEPARATORS = re.compile(r" ?[\-./_,|\u2013] ?| {1,3}")
_NON_DIGITS = re.compile(r"\D")


def _digits(value: str) -> str:
    return _NON_DIGITS.sub("", value)


# --- payment cards -----------------------------------------------------------

# (first digits, allowed lengths) per brand; a number must fit one of them. The
# brands Presidio's recognizer accepts are all here (it takes any number starting
# 1, 3, 4, 5 or 6), plus RuPay, Verve and Troy.
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
    (("50", "56", "57", "58", "6"), frozenset(range(12, 20))),  # Maestro's wider ranges
    (("1",), frozenset({15})),  # UATP
    (("60", "65", "81", "82", "508"), frozenset({16})),  # RuPay
    (("506", "650"), frozenset({16, 18, 19})),  # Verve
    (("9792",), frozenset({16})),  # Troy
)  # fmt: skip


def credit_card(value: str) -> int:
    """Brand prefix and length, Luhn, consistent separators, groups of three or more digits.

    A candidate may have taken a trailing group that is not part of the number
    (the CVV in "4111 1111 1111 1111 123"): if the whole fails, the number
    without its last group is tried, and the finding covers only that.
    """
    if _card_number(value):
        return len(value)
    separators = list(_SEPARATORS.finditer(value))
    if separators:
        shorter = value[: separators[-1].start()]
        if _card_number(shorter):
            return len(shorter)
    return 0


def _card_number(value: str) -> bool:
    if len(value) > 40:
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


_IBAN_SEPARATORS = frozenset(" -")


def iban(value: str) -> int:
    """The leading part of ``value`` that is an IBAN of its country's registry length.

    The candidate pattern takes groups of up to four characters greedily, so a
    short word after the number ("... 3201 EUR 500", "... 3201 euro") may
    have joined it; what counts is the country's length, read off the value,
    and the number must end where a group does. Any case is accepted.
    """
    if len(value) > 50:
        return 0
    expected = IBAN_LENGTHS.get(value[:2].upper())
    if expected is None:
        return 0
    seen = 0
    for position, char in enumerate(value):
        if char in _IBAN_SEPARATORS:
            continue
        seen += 1
        if seen == expected:
            end = position + 1
            if end < len(value) and value[end] not in _IBAN_SEPARATORS:
                return 0  # the number would end inside a group
            compact = "".join(c for c in value[:end] if c not in _IBAN_SEPARATORS)
            return end if iban_valid(compact.upper()) else 0
    return 0


def ipv4(value: str) -> bool:
    """A dotted quad, with or without a CIDR prefix length (``10.0.0.0/8``)."""
    address, _, prefix = value.partition("/")
    if prefix and not (prefix.isdigit() and int(prefix) <= 32):
        return False
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def ipv6(value: str) -> bool:
    """A valid IPv6 address in any RFC 5952 / RFC 4291 form (compressed, full,
    IPv4-mapped or -embedded), with or without a CIDR prefix length.

    ``a::b`` or ``A::B`` is far more often code than an address, so two groups
    need one of three hex digits or more, and a digit; the loopback and unspecified
    addresses (``::1``, ``::``) are a rule of their own that wants context.
    """
    address, _, prefix = value.partition("/")
    if len(address) > 45 or address.count(":") < 2:
        return False
    if prefix and not (prefix.isdigit() and int(prefix) <= 128):
        return False
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    groups = [group for group in address.split(":") if group]
    if len(groups) >= 3:
        return True
    # Two groups of letters alone (abc::def, dead::beef) are words, not an address.
    two = len(groups) == 2 and max(len(g) for g in groups) >= 3
    return two and any(c.isdigit() for c in address)


def mac(value: str) -> bool:
    """A MAC address other than all-zero or broadcast, which identify no device."""
    hex_digits = re.sub(r"[:.\-]", "", value).lower()
    return len(hex_digits) == 12 and hex_digits not in ("000000000000", "ffffffffffff")


# Bracketed in any case, or spelled out in capitals between spaces (jane AT example DOT com).
_OBFUSCATED_AT = re.compile(
    r"\s*(?:\[at\]|\(at\)|\{at\}|<at>|\[@\]|\(@\))\s*|(?-i:\s+AT\s+)", re.IGNORECASE
)
_OBFUSCATED_DOT = re.compile(
    r"\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>|\[\.\]|\(\.\)|\.)\s*|(?-i:\s+DOT\s+)", re.IGNORECASE
)


def obfuscated_email(value: str) -> bool:
    """``jane [at] example [dot] com`` spells a valid address once its brackets are read."""
    if len(value) > 300:
        return False
    parts = _OBFUSCATED_AT.split(value)
    if len(parts) != 2:
        return False
    local, domain = parts
    labels = _OBFUSCATED_DOT.split(domain)
    if len(labels) < 2 or not labels[-1].isalpha() or len(labels[-1]) < 2:
        return False
    return email(f"{local}@{'.'.join(labels)}")


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


# The regions whose national formats are read when DLP_PHONE_REGIONS is not set.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CN", "BR")
# Regions also tried for numbers written with a national trunk prefix (a leading 0).
_TRUNK_REGIONS = ("GB", "DE", "FR", "IN", "IL", "BR", "AU", "IT", "ES", "NL")
_NOT_A_PHONE = re.compile(
    r"\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}"  # 2024-01-15
    r"|\d{1,2}[\-/.]\d{1,2}[\-/.]\d{2,4}$"  # 15.01.2024
    r"|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"  # 10.0.0.1
    r"|\d{3}-\d{2}-\d{4}$"  # the SSN layout
)
_EXTENSION = re.compile(r"\s*(?:x|ext\.?)\s*\d+$")
_LAST_GROUP = re.compile(r"\s+(?:(?:x|ext\.?)\s*\d+|\d{1,3})$")
# The North American plan: ten digits, written without a trunk prefix.
_NANP = frozenset({"US", "CA"})
# Where national numbers are commonly written without the trunk prefix: mobiles in
# China and India, and Brazil's "(11) 91234-5678". Elsewhere (GB, DE, FR...) a
# national number is written with its leading 0, and nine or ten bare digits
# without one are far more often a timestamp or an order number.
_WITHOUT_TRUNK = frozenset({"CN", "IN", "BR"})


class PhoneRegions:
    """The phone validator for a set of regions whose national formats are read.

    How the number is written picks the regions worth asking about, which is
    both faster and more precise than asking every region about every number:
    ``+`` or ``00`` means international; a leading ``0`` is a national trunk
    prefix (the configured regions, then Europe, Israel, Australia); otherwise
    the configured regions where numbers are written without one: the North
    American plan (ten digits, or eleven starting with 1), mobiles of China and
    India, and Brazil (any number when written with separators, a mobile when
    bare), so a ten-digit timestamp is not read as a Brazilian landline or a
    German mobile without its 0.
    """

    def __init__(self, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> None:
        known = phonenumbers.SUPPORTED_REGIONS
        unknown = [r for r in regions if r not in known]
        if unknown:
            raise ValueError(f"unknown phone regions: {', '.join(unknown)}")
        self.regions = tuple(dict.fromkeys(regions))
        self._trunk = tuple(dict.fromkeys((*self.regions, *_TRUNK_REGIONS)))
        # For the regions read without a trunk prefix, libphonenumber's own national
        # number patterns (fixed lines, mobiles), matched on the digits directly:
        # the test its validation makes, without a parse per region.
        self._plans: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}
        for region in self.regions:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if region not in _WITHOUT_TRUNK or metadata is None:
                continue
            fixed, mobile = metadata.fixed_line, metadata.mobile
            if fixed is None or mobile is None:
                continue
            if fixed.national_number_pattern and mobile.national_number_pattern:
                self._plans[region] = (
                    re.compile(fixed.national_number_pattern),
                    re.compile(mobile.national_number_pattern),
                )

    def __call__(self, value: str) -> int:
        """The longest leading part of ``value`` that libphonenumber calls a valid number.

        An extension ("x123", "ext. 12") does not count towards the digits.
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
            if len(digits) <= 15 and self._valid_somewhere(candidate, digits):
                return len(candidate)
            shorter = _LAST_GROUP.sub("", candidate)
            if shorter == candidate:
                return 0
            candidate = shorter

    def _valid_somewhere(self, value: str, digits: str) -> bool:
        if value.startswith("+"):
            return _parsed(value, None) is not None
        if digits.startswith("00"):
            return _parsed("+" + digits[2:], None) is not None
        if digits.startswith("0"):
            return any(_parsed(value, region) is not None for region in self._trunk)
        bare = value.isdigit()
        for region in self.regions:
            if region in _NANP:
                north_american = len(digits) == 10 or (len(digits) == 11 and digits[0] == "1")
                if north_american and _parsed(value, region) is not None:
                    return True
                continue
            plan = self._plans.get(region)
            if plan is None:
                continue
            fixed, mobile = plan
            if mobile.fullmatch(digits) or (
                region == "BR" and not bare and fixed.fullmatch(digits)
            ):
                return True
        return False


def _parsed(value: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


phone = PhoneRegions()


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
