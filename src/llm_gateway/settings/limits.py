"""Rate limits' defaults: what applies where ``config/rate_limits.yaml`` does not say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llm_gateway.settings.declare import Section, boolean, integer, var

_RATE = integer(0, 100_000_000)


@dataclass(frozen=True, slots=True)
class LimitSettings(Section):
    """Requests per minute by scope (0: no limit), unless the tiers file sets them."""

    TITLE: ClassVar[str] = "Rate limits"

    enabled: bool = var(
        "RATE_LIMIT_ENABLED", boolean, True, "rate limits and token and cost budgets are enforced"
    )
    per_user: int = var(
        "RATE_LIMIT_PER_USER", _RATE, 100,
        "requests per minute per user whose tier sets none (0: none)",
    )  # fmt: skip
    per_tenant: int = var(
        "RATE_LIMIT_PER_TENANT", _RATE, 1000, "requests per minute per tenant (0: none)"
    )
    per_key: int = var("RATE_LIMIT_PER_KEY", _RATE, 0, "requests per minute per API key (0: none)")
    per_ip: int = var(
        "RATE_LIMIT_PER_IP", _RATE, 0, "requests per minute per client address (0: none)"
    )
