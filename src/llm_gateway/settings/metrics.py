"""The Prometheus endpoint's settings: whether ``GET /metrics`` answers, to whom, and
whether the tenant is a label (see observability.metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llm_gateway.settings.declare import Section, boolean, optional, text, var


@dataclass(frozen=True, slots=True)
class MetricsSettings(Section):
    """``GET /metrics`` in Prometheus' text format; unauthenticated unless a token is set."""

    TITLE: ClassVar[str] = "Metrics"

    enabled: bool = var(
        "METRICS_ENABLED", boolean, True,
        "serve GET /metrics (Prometheus text format); false: 404 and nothing is counted",
    )  # fmt: skip
    token: str | None = var(
        "METRICS_TOKEN", optional(text), None,
        "when set, /metrics wants `Authorization: Bearer <token>` (else 401); unset: open, "
        "as /health is",
        secret=True,
    )  # fmt: skip
    tenant_label: bool = var(
        "METRICS_TENANT_LABEL", boolean, False,
        "add a tenant label to the token and cost counters (one series per tenant and model)",
    )  # fmt: skip
