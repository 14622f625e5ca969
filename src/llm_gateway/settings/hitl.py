"""Confirmations' process-wide settings: what ``config/guardrails.yaml`` does not say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llm_gateway.settings.declare import Section, var


def sweep_seconds(raw: str) -> float:
    value = float(raw)
    if not 0.05 <= value <= 3600:
        raise ValueError("expected a number of seconds from 0.05 to 3600")
    return value


@dataclass(frozen=True, slots=True)
class HitlSettings(Section):
    """How often unanswered confirmations are looked for, to audit their expiry."""

    TITLE: ClassVar[str] = "Confirmations"

    expiry_sweep_s: float = var(
        "CONFIRMATION_EXPIRY_SWEEP_SECONDS", sweep_seconds, 15.0,
        "how often each process looks for confirmations that expired unanswered, to write "
        "their audit event (confirmation.expire)",
    )  # fmt: skip
