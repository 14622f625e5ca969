"""What a detector reports: one finding per sensitive span, never the value itself.

Every part of the DLP package speaks in these: the rule engine and the NER
detector produce them, the anonymiser consumes them, the audit row and the
scan API report them (without the text they cover).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Category = Literal["pii", "secret", "custom"]


class Action(StrEnum):
    """What happens to a request (or an answer) carrying the finding."""

    BLOCK = "block"  # refuse it: 4xx dlp_blocked, naming the rules, never the text
    REDACT = "redact"  # replace the span before it leaves
    ALERT = "alert"  # pass it unchanged, record it and raise an alert event


class Operator(StrEnum):
    """How a REDACT finding's span is replaced (here, beside Action, so that settings
    can parse DLP_OPERATOR without importing the anonymiser)."""

    REPLACE = "replace"
    TOKEN = "token"  # noqa: S105 (an operator name, not a credential)
    MASK = "mask"
    HASH = "hash"
    SYNTHETIC = "synthetic"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive span of a text, as character offsets into the original text.

    ``entity`` uses Presidio's names for PII (``US_SSN``, ``CREDIT_CARD``,
    ``EMAIL_ADDRESS``, ``PERSON``...), so Presidio users' configurations carry
    over; secrets use names like ``AWS_ACCESS_KEY``. ``label`` is the short name
    the specification shows to people: the ``SSN`` in ``<SSN_REDACTED>`` and in a
    native response's ``pii_entities``.
    """

    entity: str
    label: str
    category: Category
    start: int
    end: int
    score: float
    rule: str
    action: Action
    severity: Severity
