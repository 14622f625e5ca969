"""Routing's process-wide bounds: what ``config/routing_policies.yaml`` does not say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llm_gateway.settings.declare import Section, integer, var


@dataclass(frozen=True, slots=True)
class RoutingSettings(Section):
    """How long a request may take over all its attempts, and how routing waits."""

    TITLE: ClassVar[str] = "Routing"

    deadline_ms: int = var(
        "ROUTING_DEADLINE_MS", integer(1, 3_600_000), 120_000,
        "the longest a request may take over all its attempts (each model's timeout_ms "
        "bounds one attempt)",
    )  # fmt: skip
    busy_wait_ms: int = var(
        "ROUTING_BUSY_WAIT_MS", integer(0, 60_000), 500,
        "how long a request that finds every model at its max_concurrent waits for one "
        "to free up before 503 all_models_busy",
    )  # fmt: skip
    sticky_ttl_s: int = var(
        "ROUTING_STICKY_TTL_SECONDS", integer(1, 30 * 86_400), 3600,
        "how long a conversation (X-Conversation-Id) stays on the model that served it first",
    )  # fmt: skip
