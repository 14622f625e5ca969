"""Valid (and deliberately invalid) sensitive values, generated from a seeded RNG.

Each generator builds a value that passes the check a real one passes (Luhn
for cards, the SSA's rules for SSNs, mod-97 for IBANs, libphonenumber for
phone numbers), so the labelled corpus is right by construction. The
``invalid_*`` generators make the near misses a good detector must reject.
Nothing is downloaded; the same seed gives the same values.
"""

from __future__ import annotations

import ipaddress
import random
import string
import uuid

import phonenumbers

# --- credit cards --------------------------------------------------------------

# brand: (prefixes, length, grouping of the digits when printed)
CARD_BRANDS: dict[str, tuple[tuple[str, ...], int, tuple[int, ...]]] = {
    "visa": (("4",), 16, (4, 4, 4, 4)),
    "mastercard": (("51", "52", "53", "54", "55", "2221", "2500", "2720"), 16, (4, 4, 4, 4)),
    "amex": (("34", "37"), 15, (4, 6, 5)),
    "discover": (("6011", "644", "65"), 16, (4, 4, 4, 4)),
    "jcb": (("3528", "3530", "3589"), 16, (4, 4, 4, 4)),
    "diners": (("36", "38", "300", "305"), 14, (4, 6, 4)),
}
CARD_SEPARATORS = ("", " ", "-")


def luhn_check_digit(payload: str) -> str:
    total = 0
    for i, char in enumerate(reversed(payload)):
        digit = int(char)
        if i % 2 == 0:  # doubled: these sit at odd positions once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = [c for c in number if c.isdigit()]
    return len(digits) > 1 and luhn_check_digit("".join(digits[:-1])) == digits[-1]


def card_digits(rng: random.Random, brand: str, *, valid: bool = True) -> str:
    prefixes, length, _ = CARD_BRANDS[brand]
    prefix = rng.choice(prefixes)
    payload = prefix + "".join(rng.choices(string.digits, k=length - len(prefix) - 1))
    check = luhn_check_digit(payload)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    return payload + check


def group(digits: str, sizes: tuple[int, ...], separator: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(digits[at : at + size])
        at += size
    return separator.join(parts)


def card(rng: random.Random, brand: str, separator: str, *, valid: bool = True) -> str:
    return group(card_digits(rng, brand, valid=valid), CARD_BRANDS[brand][2], separator)


# --- US social security numbers --------------------------------------------------

# Numbers the SSA rules allow but that are public examples, never anyone's SSN.
KNOWN_EXAMPLE_SSNS = frozenset({"078051120", "219099999", "123456789"})


def ssn_valid(ssn: str) -> bool:
    """The SSA's rules: area 001-899 but not 666, group 01-99, serial 0001-9999."""
    digits = "".join(c for c in ssn if c.isdigit())
    if len(digits) != 9 or digits in KNOWN_EXAMPLE_SSNS or len(set(digits)) == 1:
        return False
    area, grp, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return 0 < area < 900 and area != 666 and grp > 0 and serial > 0


def ssn(rng: random.Random, separator: str = "-") -> str:
    while True:
        area = rng.randint(1, 899)
        digits = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        if ssn_valid(digits):
            return separator.join((digits[:3], digits[3:5], digits[5:]))


def invalid_ssn(rng: random.Random) -> str:
    """A number shaped like an SSN that the SSA never issues."""
    area, grp, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
    kind = rng.randrange(7)
    if kind == 0:
        area = 0
    elif kind == 1:
        area = 666
    elif kind == 2:
        grp = 0
    elif kind == 3:
        serial = 0
    elif kind == 4:
        area = rng.randint(900, 999)
        grp = rng.choice((1, 12, 34, 47))  # outside the ITIN group ranges too
    else:
        return rng.choice(("123-45-6789", "078-05-1120", "219-09-9999", "111-11-1111"))
    return f"{area:03d}-{grp:02d}-{serial:04d}"


# --- IBAN ------------------------------------------------------------------------

# country: BBAN layout as (count, kind) runs; kind n = digits, a = capital letters,
# c = letters or digits. Lengths follow the SWIFT IBAN registry.
IBAN_LAYOUTS: dict[str, tuple[tuple[int, str], ...]] = {
    "DE": ((18, "n"),),
    "GB": ((4, "a"), (14, "n")),
    "FR": ((10, "n"), (11, "c"), (2, "n")),
    "ES": ((20, "n"),),
    "IT": ((1, "a"), (10, "n"), (12, "c")),
    "NL": ((4, "a"), (10, "n")),
    "CH": ((5, "n"), (12, "c")),
    "BE": ((12, "n"),),
    "PL": ((24, "n"),),
    "AT": ((16, "n"),),
}
_KINDS = {
    "n": string.digits,
    "a": string.ascii_uppercase,
    "c": string.digits + string.ascii_uppercase,
}


def iban_mod97(iban: str) -> int:
    compact = iban.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97


def iban(rng: random.Random, country: str, *, spaced: bool, valid: bool = True) -> str:
    bban = "".join(
        "".join(rng.choices(_KINDS[kind], k=count)) for count, kind in IBAN_LAYOUTS[country]
    )
    check = 98 - iban_mod97(country + "00" + bban)
    if not valid:
        check = (check + rng.randint(1, 90)) % 97 + 2
        if iban_mod97(f"{country}{check:02d}{bban}") == 1:
            check = check % 97 + 2
    compact = f"{country}{check:02d}{bban}"
    if not spaced:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


# --- phone numbers -----------------------------------------------------------------

PHONE_REGIONS = ("US", "CA", "GB", "DE", "FR", "IN", "AU", "BR", "ES", "IT", "JP", "NL")
# Regions whose numbers also appear in their national format, without a country code.
NATIONAL_FORMAT_REGIONS = ("US", "CA", "GB", "DE", "FR", "IN")
_PHONE_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)


def phone_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    """A valid number for ``region``: the example number's first digit, random digits after it.

    Only the first digit is kept (it selects mobile or fixed line in most
    plans), so area codes and operator prefixes vary as they do in real life.
    """
    example = phonenumbers.example_number_for_type(region, rng.choice(_PHONE_TYPES))
    assert example is not None
    national = phonenumbers.national_significant_number(example)
    for _ in range(10_000):
        digits = national[0] + "".join(rng.choices(string.digits, k=len(national) - 1))
        candidate = phonenumbers.parse("+" + str(example.country_code) + digits)
        if phonenumbers.is_valid_number(candidate):
            return candidate
    raise RuntimeError(f"no valid {region} number found")  # pragma: no cover


def phone(rng: random.Random, region: str) -> str:
    number = phone_number(rng, region)
    fmt = phonenumbers.PhoneNumberFormat
    styles = ["international", "e164"]
    if region in NATIONAL_FORMAT_REGIONS:
        styles.append("national")
    if region in ("US", "CA"):
        styles += ["dashes", "dots", "national"]
    style = rng.choice(styles)
    if style == "international":
        return phonenumbers.format_number(number, fmt.INTERNATIONAL)
    if style == "e164":
        return phonenumbers.format_number(number, fmt.E164)
    if style == "national":
        return phonenumbers.format_number(number, fmt.NATIONAL)
    nsn = phonenumbers.national_significant_number(number)
    separator = "-" if style == "dashes" else "."
    return separator.join((nsn[:3], nsn[3:6], nsn[6:]))


def phone_valid(text: str, regions: tuple[str, ...] = PHONE_REGIONS) -> bool:
    """A valid number as written, read as a local number of one of ``regions``."""
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


# --- network addresses -----------------------------------------------------------------


def ipv4(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == 1:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    first = rng.choice([n for n in range(1, 224) if n not in (10, 127)])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6(rng: random.Random) -> str:
    groups = [rng.getrandbits(16) for _ in range(8)]
    if rng.random() < 0.5:  # a run of zeros, printed as "::"
        start = rng.randint(1, 5)
        for i in range(start, start + rng.randint(2, 3)):
            groups[i] = 0
    if rng.random() < 0.3:
        groups[0] = 0xFE80
    address = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
    return address.exploded if rng.random() < 0.2 else address.compressed


def mac(rng: random.Random) -> str:
    octets = [rng.getrandbits(8) for _ in range(6)]
    octets[0] &= 0xFE  # unicast
    if octets == [0] * 6:
        octets[5] = 1
    style = rng.randrange(4)
    if style == 3:  # Cisco dotted
        hexed = "".join(f"{o:02x}" for o in octets)
        return ".".join(hexed[i : i + 4] for i in range(0, 12, 4))
    text = (":" if style != 2 else "-").join(f"{o:02x}" for o in octets)
    return text.upper() if style == 1 else text


# --- hard negatives ----------------------------------------------------------------------


def hex_string(rng: random.Random, length: int) -> str:
    return "".join(rng.choices("0123456789abcdef", k=length))


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def version(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}"
    if kind == 1:
        major, minor, patch = rng.randint(1, 5), rng.randint(0, 20), rng.randint(0, 9)
        return f"v{major}.{minor}.{patch}-rc.{rng.randint(1, 4)}"
    if kind == 2:  # a Windows build: four parts, one above 255, so never an IPv4 address
        return f"10.0.{rng.randint(17000, 26000)}.{rng.randint(1, 4000)}"
    return f"{rng.randint(1, 3)}.{rng.randint(0, 99)}.{rng.randint(0, 99)}.post{rng.randint(1, 9)}"


def isbn13(rng: random.Random) -> str:
    body = "978" + "".join(rng.choices(string.digits, k=9))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    full = body + str((10 - total % 10) % 10)
    return f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}"


#: Text built to make a backtracking engine, or a careless loop around one, take forever:
#: the end-to-end tests check that each is answered, bench/dlp_speed.py how fast.
CRAFTED_SLOW = {
    "a_500k": "a" * 500_000,
    "digit_dash_500k": "1-2-" * 125_000,
    "spaced_digits_500k": "1 2 " * 125_000,
    "dotted_digits_500k": "1.2." * 125_000,
    "colons_500k": ":" * 500_000,
    "at_dots_500k": "@." * 250_000,
    "almost_keys_500k": "sk-" * 166_000,
    "almost_ssn_500k": "536-22-872" * 50_000,
    "dense_phones_480k": "+1 415 555 0132 " * 30_000,
    "dense_ssns_480k": "536-22-8726 " * 40_000,  # every one a valid SSN
}
