"""Named validators: the second opinion a rule asks for before a match becomes a finding.

A rule names its validators in YAML (``validator: luhn`` or
``validator: [not_placeholder, "entropy>=3.5"]``); ``resolve`` turns each
name into a function, once, at load time, so an unknown name is a
configuration error rather than a surprise at scan time.

A validator answers with the number of leading characters of the value it
accepts: 0 rejects, the full length accepts. Only ``phone``, ``credit_card``
and ``iban`` ever answer with less, trimming what a greedy candidate pattern
swallowed after the number ("555-123-4567 42", "4111 ... 1111 123",
"... 3201 EUR"); the rest are yes/no checks.

Personal identifiers are checked in ``identifiers``; this module holds the
checks for secrets and the registry. Every validator bounds its own work:
values longer than the format allows are rejected outright and the
open-ended ones (entropy, JWT) only look at a bounded prefix, so a crafted
megabyte-long match costs no more than a short one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping

from llm_gateway.dlp.identifiers import (
    bitcoin,
    credit_card,
    date_of_birth,
    eip55,
    email,
    iban,
    ipv4,
    ipv6,
    itin,
    luhn,
    mac,
    obfuscated_email,
    phone,
    ssn,
)

Validator = Callable[[str], int]  # accepted prefix length; 0 rejects

ENTROPY_SAMPLE = 4096  # characters of a value that entropy is measured on


# --- secrets -----------------------------------------------------------------


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (its first ENTROPY_SAMPLE characters)."""
    sample = value[:ENTROPY_SAMPLE]
    size = len(sample)
    # Short values (the usual case): str.count per distinct character beats a Counter.
    counts = map(sample.count, set(sample)) if size <= 64 else Counter(sample).values()
    log2 = math.log2
    return -sum(n / size * log2(n / size) for n in counts)


def jwt(value: str) -> bool:
    """The first segment decodes to a JSON object naming an algorithm, as JWT headers do."""
    header = value.split(".", 1)[0]
    if len(header) > 4096:
        return False
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        parsed = json.loads(decoded)
    except (binascii.Error, ValueError):
        return False
    return isinstance(parsed, dict) and "alg" in parsed


_PLACEHOLDER_WORDS = frozenset({
    "password", "passwd", "pass", "pwd", "secret", "changeme", "yourpassword", "your_password",
    "mypassword", "redacted", "example", "null", "none", "true", "false", "undefined", "string",
})  # fmt: skip
_PLACEHOLDER_START = tuple("$<{%[*")


_REFERENCE = re.compile(
    r"[a-z_][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"
)
# What a template asks to be filled in: your_password_here, enter-token, <insert key>.
_FILL_IN = re.compile(
    r"^(?:your|enter|insert|put|add)[_\-\s]?[a-z_\-\s]*(?:password|pass|pwd|secret|token|key)|"
    r"[_\-\s](?:here|goes[_\-\s]here)$",
    re.IGNORECASE,
)
# A YAML tag (!vault |, !Ref, !Sub) or a version (2.14.0-beta.3+build.12345), not a value.
_TAG_OR_VERSION = re.compile(
    r"![A-Za-z][A-Za-z0-9_]*|v?\d+(?:\.\d+){1,3}(?:[\-+][0-9A-Za-z.+\-]*)?"
)
# Code that computes the value rather than holding it: ``getpass()``,
# ``os.environ["X"]``, ``Optional[str]``; a path or a URL (``PWD=/home/app``).
_EXPRESSION = re.compile(
    r"[A-Za-z_][A-Za-z0-9_.]*[(\[]|[~.]?/[A-Za-z0-9_./\-]*|[a-z][a-z0-9+.\-]*://"
)


def not_placeholder(value: str) -> bool:
    """Rejects what stands for a secret rather than being one.

    Template variables (``${DB_PASS}``, ``<password>``, ``{{token}}``), masks
    (``****``, ``xxxx``), placeholder words (``changeme``, ``password``),
    references to where the secret lives (``self.password``, ``DB_PASSWORD``,
    ``process.env.DB_PASSWORD``), fill-ins (``your_password_here``), YAML tags
    (``!vault``), versions (``2.14.0-beta.3``) and code that computes it
    (``getpass()``, ``os.environ['PW']``, a path).
    """
    if not value or value.startswith(_PLACEHOLDER_START) or len(set(value)) == 1:
        return False
    if value.startswith("^") and ("(?" in value or value.endswith("$") or "{" in value):
        return False  # a pattern the value must match (password_regex: ^(?=.*[A-Z]).{8,}$)
    lowered = value.lower()
    if lowered in _PLACEHOLDER_WORDS or "xxxx" in lowered or "****" in value or "..." in value:
        return False
    if len(value) <= 128 and (
        _REFERENCE.fullmatch(value) is not None
        or _TAG_OR_VERSION.fullmatch(value) is not None
        or _FILL_IN.search(value) is not None
    ):
        return False
    if len(value) <= 256 and _EXPRESSION.match(value) is not None:
        return False
    return not lowered.endswith("example")


# Entropy floors for a value next to a credential name, in bits per character, by
# the alphabet it is written in: a random string reaches about log2 of its
# alphabet (4 for hex, 5.95 for alphanumerics, 6 for base64) once it is long
# enough; identifiers, words and counters stay far below. A short string cannot
# reach its alphabet's figure (n characters carry at most log2(n) bits each), so
# the floor is also capped at SHORT_FACTOR * log2(length).
ENTROPY_FLOORS = {"hex": 3.0, "alphanumeric": 3.5, "base64": 3.5}
SHORT_FACTOR = 0.85
_HEX = frozenset("0123456789abcdefABCDEF-")
_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def charset(value: str) -> str:
    """``hex``, ``alphanumeric`` or ``base64`` (anything else): the alphabet ``value`` uses."""
    chars = set(value[:ENTROPY_SAMPLE])
    if chars <= _HEX:
        return "hex"
    return "alphanumeric" if chars <= _ALNUM else "base64"


def high_entropy(value: str) -> bool:
    """Random enough to be a key: letters and digits both, and at least its alphabet's
    entropy floor (``ENTROPY_FLOORS``, capped for short values)."""
    if not mixed(value):
        return False
    floor = min(ENTROPY_FLOORS[charset(value)], SHORT_FACTOR * math.log2(max(len(value), 2)))
    return shannon_entropy(value) >= floor


PASSWORD_MIN_LENGTH = 8


def password_like(value: str) -> bool:
    """What a person picks as a password, said in prose: at least PASSWORD_MIN_LENGTH
    characters from three of the four classes (lower, upper, digit, symbol), so
    "Winter2024!" counts and "incorrect", "stored" or "hunter2" do not."""
    sample = value[:256]
    if len(sample) < PASSWORD_MIN_LENGTH or not not_placeholder(sample):
        return False
    classes = (
        any(c.islower() for c in sample)
        + any(c.isupper() for c in sample)
        + any(c.isdigit() for c in sample)
        + any(not c.isalnum() for c in sample)
    )
    return classes >= 3


def passphrase_like(value: str) -> bool:
    """A chosen password (``password_like``), or a passphrase of at least three words
    and PASSPHRASE_MIN_LENGTH characters: "purple monkey dishwasher", not "required"."""
    if password_like(value):
        return True
    sample = value[:256]
    words = sample.split()
    return (
        len(sample) >= PASSPHRASE_MIN_LENGTH
        and len(words) >= 3
        and not_placeholder(sample)
        and shannon_entropy(sample) >= 3.0
    )


PASSPHRASE_MIN_LENGTH = 12


def mixed(value: str) -> bool:
    """Letters and digits both: random tokens have them, words and identifiers rarely do."""
    sample = value[:ENTROPY_SAMPLE]
    return any(c.isdigit() for c in sample) and any(c.isalpha() for c in sample)


# --- the registry ------------------------------------------------------------


def _whole(check: Callable[[str], bool]) -> Validator:
    """A yes/no check as a validator: all of the value, or nothing."""

    def accepted(value: str) -> int:
        return len(value) if check(value) else 0

    accepted.__name__ = check.__name__
    accepted.__doc__ = check.__doc__
    return accepted


VALIDATORS: Mapping[str, Validator] = {
    "luhn": _whole(luhn),
    "credit_card": credit_card,
    "ssn": _whole(ssn),
    "itin": _whole(itin),
    "iban": iban,
    "phone": phone,
    "ipv4": _whole(ipv4),
    "ipv6": _whole(ipv6),
    "mac": _whole(mac),
    "email": _whole(email),
    "obfuscated_email": _whole(obfuscated_email),
    "bitcoin": _whole(bitcoin),
    "eip55": _whole(eip55),
    "date_of_birth": _whole(date_of_birth),
    "jwt": _whole(jwt),
    "not_placeholder": _whole(not_placeholder),
    "mixed": _whole(mixed),
    "high_entropy": _whole(high_entropy),
    "password_like": _whole(password_like),
    "passphrase_like": _whole(passphrase_like),
}
# Validators that confirm a value by its structure (a check digit, a registry, a
# parse), as opposed to those that only reject unlikely values (entropy, mixed).
CONFIRMING = frozenset({
    "luhn", "credit_card", "ssn", "itin", "iban", "phone", "ipv4", "ipv6", "mac", "email",
    "obfuscated_email",
    "bitcoin", "eip55", "date_of_birth", "jwt",
})  # fmt: skip
_ENTROPY = re.compile(r"entropy\s*>=\s*(\d+(?:\.\d+)?)")


def resolve(name: str, phone: Validator | None = None) -> Validator:
    """The validator called ``name``; ``entropy>=X`` is parameterised. ValueError if unknown.

    ``phone`` replaces the default ``phone`` validator (one for the deployment's
    ``DLP_PHONE_REGIONS``, built once by the engine's loader).
    """
    if name == "phone" and phone is not None:
        return phone
    found = VALIDATORS.get(name)
    if found is not None:
        return found
    parameterised = _ENTROPY.fullmatch(name.strip())
    if parameterised is not None:
        threshold = float(parameterised.group(1))
        if threshold > 8:
            raise ValueError(f"entropy threshold {threshold} is above 8 bits per character")
        return lambda value: len(value) if shannon_entropy(value) >= threshold else 0
    known = ", ".join(sorted(VALIDATORS))
    raise ValueError(f"unknown validator {name!r} (known: {known}, entropy>=X)")
