"""What the alerts service is told: its destinations and its windows (``config/alerts.yaml``,
validated and resolved by :mod:`llm_gateway.config.alerts`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["EVENT_KINDS", "AlertSettings", "Destination", "EventKind"]

#: What an alert can be about: a request DLP blocked (or flagged, with the ``alert``
#: action), a policy that could not decide, a request refused for a token or cost
#: budget, a model's circuit opening, the audit spool growing, a confirmation
#: waiting for its answer too long.
EventKind = Literal[
    "dlp_block", "dlp_alert", "policy_error", "budget_exceeded", "breaker_open",
    "audit_spool", "confirmation_stale",
]  # fmt: skip
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


@dataclass(frozen=True, slots=True)
class Destination:
    """One webhook. Its URL and routing key are credentials: no repr, no log shows them."""

    name: str  # its key in alerts.yaml: what logs call it
    format: Literal["slack", "pagerduty"]
    url: str = field(repr=False)
    events: frozenset[str] = frozenset()
    routing_key: str | None = field(default=None, repr=False)  # pagerduty's
    max_per_minute: int = 20  # more are dropped and counted
    timeout_s: float = 5.0  # one attempt's
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class AlertSettings:
    destinations: tuple[Destination, ...] = ()  # the active ones
    disabled: Mapping[str, str] = field(default_factory=dict)  # destination -> why
    dedup_s: float = 300.0  # one alert per kind and key in this window
    queue_size: int = 1000  # per destination; a full queue drops its oldest
    check_s: float = 60.0  # how often the periodic checks run
    confirmation_stale_s: float = 600.0
    source: str | None = None  # PagerDuty's source and Slack's context: the hostname if None
    group: str = "llm-gateway"  # PagerDuty's group
