"""One alert: what happened (its kind and key), in a sentence and a few safe details."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["SEVERITY", "Alert", "Detail", "Severity"]

Severity = Literal["critical", "error", "warning", "info"]  # PagerDuty's four
#: Each kind's severity.
SEVERITY: dict[str, Severity] = {
    "dlp_block": "warning", "dlp_alert": "info", "policy_error": "error",
    "budget_exceeded": "warning", "breaker_open": "error", "audit_spool": "error",
    "confirmation_stale": "warning",
}  # fmt: skip

#: A detail's value: a count, a name, an id, a list of entity types.
Detail = str | int | float | bool | None | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """``kind`` and ``key`` say what it is about (``breaker_open``, the model's name): alerts
    of one kind and key within the de-duplication window are one. ``details`` holds
    counts, ids and names only, never a prompt, an answer or a value found."""

    kind: str
    key: str
    summary: str
    details: Mapping[str, Detail]
    at: float  # wall-clock seconds
    severity: Severity
    repeats: int = 0  # alerts of its kind and key left out since the last one was sent
