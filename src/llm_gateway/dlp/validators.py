"""Named validators: the second opinion a rule asks for before a match becomes a finding.

A rule names its validators in YAML (``validator: luhn`` or
``validator: [not_placeholder, "entropy>=3.5"]``); ``resolve`` turns each
name into a function, once, at load time, so an unknown name is a
configuration error rather than a surprise at scan time.

A validator answers with the number of leading characters of the value it
accepts: 0 rejects, the full length accepts. Only ``phone`` and
``credit_card`` ever answer with less, trimming what a greedy candidate
pattern swallowed after the number ("555-123-4567 42", "4111 ... 1111 123");
the rest are yes/no checks.

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


_REFERENCE = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def not_placeholder(value: str) -> bool:
    """Rejects what stands for a secret rather than being one.

    Template variables (``${DB_PASS}``, ``<password>``, ``{{token}}``), masks
    (``****``, ``xxxx``), placeholder words (``changeme``, ``password``) and
    references to where the secret lives (``self.password``, ``DB_PASSWORD``).
    """
    if not value or value.startswith(_PLACEHOLDER_START) or len(set(value)) == 1:
        return False
    lowered = value.lower()
    if lowered in _PLACEHOLDER_WORDS or "xxxx" in lowered or "****" in value or "..." in value:
        return False
    if len(value) <= 128 and _REFERENCE.fullmatch(value) is not None:
        return False
    return not lowered.endswith("example")


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
    "iban": _whole(iban),
    "phone": phone,
    "ipv4": _whole(ipv4),
    "ipv6": _whole(ipv6),
    "mac": _whole(mac),
    "email": _whole(email),
    "bitcoin": _whole(bitcoin),
    "eip55": _whole(eip55),
    "date_of_birth": _whole(date_of_birth),
    "jwt": _whole(jwt),
    "not_placeholder": _whole(not_placeholder),
    "mixed": _whole(mixed),
}
_ENTROPY = re.compile(r"entropy\s*>=\s*(\d+(?:\.\d+)?)")


def resolve(name: str) -> Validator:
    """The validator called ``name``; ``entropy>=X`` is parameterised. ValueError if unknown."""
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
