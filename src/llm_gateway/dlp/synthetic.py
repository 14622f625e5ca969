"""Realistic stand-ins for sensitive values: the ``synthetic`` anonymisation operator.

A model answers better about "Karen Kelly, 4929-1803-5542-1170" than about
"<PERSON_REDACTED>, <CREDIT_CARD_REDACTED>", so this operator keeps the text
natural while the real values stay home. Each fake is drawn from a random
generator seeded with a keyed HMAC of the value: the same value always maps to
the same fake within a deployment (the model sees one consistent person), and
without the key nobody can tell which value a fake came from.

Format is preserved where a downstream check would notice: cards keep their
length and separators and pass Luhn; SSNs and ITINs keep their separators and
follow the issuing rules (SSN area never 000, 666 or 9xx); IBANs keep country,
length and a valid mod-97 check; phone numbers, MAC addresses and unknown
values (secrets, custom rules) keep their shape, character class by character
class. Names, places, emails (always at the reserved ``example.*`` domains, so
a fake never belongs to a real mailbox) and IPs come from Faker, imported only
when this operator first runs (the import costs about 0.1 s).

These fakes are not a cipher: they are not reversible, and two values may
happen to share a fake.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import re
import string
from collections.abc import Callable
from typing import TYPE_CHECKING

from llm_gateway.dlp.checksums import iban_check_digits, luhn_check_digit

if TYPE_CHECKING:
    from faker import Faker

_LEADING_PREFIX = re.compile(r"[A-Za-z]{2,6}[-_]")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_ITIN_GROUPS = (*range(50, 66), *range(70, 89), 90, 91, 92, *range(94, 100))
_SSN_AREAS = [a for a in range(1, 900) if a != 666]


def _fill(template: str, chars: str, keep: Callable[[str], bool] = str.isdigit) -> str:
    """``template`` with its characters selected by ``keep`` replaced, in order, by ``chars``."""
    it = iter(chars)
    return "".join(next(it) if keep(ch) else ch for ch in template)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def fake_card(value: str, rng: random.Random) -> str | None:
    digits = "".join(ch for ch in value if ch.isdigit())
    if not 12 <= len(digits) <= 19:
        return None
    body = digits[0] + _digits(rng, len(digits) - 2)  # the first digit: the brand family
    return _fill(value, body + str(luhn_check_digit(body)))


def fake_ssn(value: str, rng: random.Random) -> str | None:
    if sum(ch.isdigit() for ch in value) != 9:
        return None
    area, group, serial = rng.choice(_SSN_AREAS), rng.randint(1, 99), rng.randint(1, 9999)
    return _fill(value, f"{area:03d}{group:02d}{serial:04d}")


def fake_itin(value: str, rng: random.Random) -> str | None:
    if sum(ch.isdigit() for ch in value) != 9:
        return None
    area, group = rng.randint(900, 999), rng.choice(_ITIN_GROUPS)
    return _fill(value, f"{area:03d}{group:02d}{rng.randint(0, 9999):04d}")


def fake_phone(value: str, rng: random.Random) -> str | None:
    """Same separators and digit count; a leading ``+`` country code of 1-3 digits is kept."""
    kept = ""
    if value.startswith("+"):
        run = len(value) - len(value[1:].lstrip(string.digits)) - 1
        kept = value[1 : 1 + run] if run <= 3 else value[1]
    count = sum(ch.isdigit() for ch in value) - len(kept)
    if count < 4:
        return None
    return _fill(value, kept + str(rng.randint(2, 9)) + _digits(rng, count - 1))


def fake_iban(value: str, rng: random.Random) -> str | None:
    chars = "".join(ch for ch in value if ch.isalnum()).upper()
    if len(chars) < 8 or not chars[:2].isalpha():
        return None
    bban = "".join(_same_class(ch, rng) for ch in chars[4:]).upper()
    return _fill(value, chars[:2] + iban_check_digits(chars[:2], bban) + bban, str.isalnum)


def fake_mac(value: str, rng: random.Random) -> str | None:
    is_hex = set(string.hexdigits).__contains__
    hexes = "".join(rng.choice("0123456789abcdef") for ch in value if is_hex(ch))
    return _fill(value, hexes if value.lower() == value else hexes.upper(), is_hex)


def _same_class(ch: str, rng: random.Random) -> str:
    if ch.isdigit():
        return rng.choice(string.digits)
    if ch.isascii() and ch.isupper():
        return rng.choice(string.ascii_uppercase)
    if ch.isascii() and ch.islower():
        return rng.choice(string.ascii_lowercase)
    return ch


def fake_shape(value: str, rng: random.Random) -> str:
    """Every ASCII letter and digit replaced by a random one of its class; a short
    ``sk-``/``ghp_``-style prefix kept, so the model still knows what kind of secret it was."""
    match = _LEADING_PREFIX.match(value)
    prefix = match.group() if match else ""
    return prefix + "".join(_same_class(ch, rng) for ch in value[len(prefix) :])


_FORMAT_PRESERVING: dict[str, Callable[[str, random.Random], str | None]] = {
    "CREDIT_CARD": fake_card,
    "US_SSN": fake_ssn,
    "SSN": fake_ssn,
    "US_ITIN": fake_itin,
    "ITIN": fake_itin,
    "PHONE_NUMBER": fake_phone,
    "PHONE": fake_phone,
    "IBAN_CODE": fake_iban,
    "IBAN": fake_iban,
    "MAC_ADDRESS": fake_mac,
    "MAC": fake_mac,
}
_FROM_FAKER = {
    "PERSON": "person",
    "LOCATION": "location",
    "EMAIL_ADDRESS": "email",
    "EMAIL": "email",
    "IP_ADDRESS": "ip",
    "IP": "ip",
    "IPV4": "ip",
    "IPV6": "ip",
}


class SyntheticValues:
    """Deterministic, keyed fakes; one instance per anonymiser, Faker loaded on first use."""

    def __init__(self, key: bytes, *, locale: str = "en_US") -> None:
        self._key = key
        self._locale = locale
        self._faker: Faker | None = None

    def fake(self, entity: str, label: str, value: str) -> str | None:
        """A stand-in for ``value``, or ``None`` for kinds that cannot be faked (e.g. NRP)."""
        digest = hmac.digest(self._key, entity.encode() + b"\x00" + value.encode(), hashlib.sha256)
        # Not for security: the seed only makes the fake repeatable. The secret is the HMAC key.
        rng = random.Random(int.from_bytes(digest[:16], "big"))  # noqa: S311
        generator = _FORMAT_PRESERVING.get(entity) or _FORMAT_PRESERVING.get(label)
        if generator is not None:
            return generator(value, rng) or fake_shape(value, rng)
        kind = _FROM_FAKER.get(entity) or _FROM_FAKER.get(label)
        if kind is not None:
            return self._from_faker(kind, value, rng)
        if entity == "NRP":  # nationality, religion, politics: a fake would change the meaning
            return None
        return fake_shape(value, rng)

    def _from_faker(self, kind: str, value: str, rng: random.Random) -> str:
        faker = self._faker
        if faker is None:
            from faker import Faker  # slow import (about 0.1 s): only when this operator runs

            faker = self._faker = Faker(self._locale)
        faker.seed_instance(rng.getrandbits(64))
        if kind == "person":
            return str(faker.name())
        if kind == "location":
            return str(faker.city())
        if kind == "email":
            return f"{faker.user_name()}@{rng.choice(_EMAIL_DOMAINS)}"
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return fake_shape(value, rng)
        if address.version == 6:
            return str(faker.ipv6())
        return str(faker.ipv4_private() if address.is_private else faker.ipv4_public())
