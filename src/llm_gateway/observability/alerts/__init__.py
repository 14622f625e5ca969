"""Alerts: configured events sent to Slack and PagerDuty webhooks, off the request path.

- :mod:`.settings`: the destinations and windows, as ``config/alerts.yaml`` resolves them;
- :mod:`.alert`: one alert (kind, key, summary, safe details, severity);
- :mod:`.formats`: Slack's incoming-webhook message and PagerDuty's Events v2 event;
- :mod:`.service`: :class:`Alerts`, de-duplication, rate limits, queues and senders;
- :mod:`.sources`: the recorder, the breaker's listener, the stale-confirmation check.

:func:`build_alerts` is what the app's start-up calls: None without ``alerts.yaml``
(or without a destination whose variables are set).
"""

from __future__ import annotations

import logging
import time

from llm_gateway.observability.alerts.alert import Alert
from llm_gateway.observability.alerts.service import Alerts
from llm_gateway.observability.alerts.settings import AlertSettings, Destination
from llm_gateway.observability.alerts.sources import (
    AlertRecorder,
    PendingSource,
    StaleConfirmations,
    breaker_listener,
)
from llm_gateway.state import Store
from llm_gateway.transport import Transport

__all__ = [
    "Alert", "AlertRecorder", "AlertSettings", "Alerts", "Destination", "breaker_listener",
    "build_alerts",
]  # fmt: skip

log = logging.getLogger(__name__)


def build_alerts(
    settings: AlertSettings,
    transport: Transport,
    confirmations: PendingSource,
    shared: Store | None = None,
    store_timeout_s: float = 0.5,
) -> Alerts | None:
    """The alerts service for the active destinations (not started), with its
    stale-confirmation check; None when there is none. ``shared``: the store the replicas
    claim each alert in, so that what they all see is sent once."""
    for name, why in settings.disabled.items():
        log.warning("alerts: destination %s is disabled: %s", name, why)
    if not settings.destinations:
        return None
    alerts = Alerts(settings, transport, shared=shared, store_timeout_s=store_timeout_s)
    if alerts.wants("confirmation_stale"):
        age_s = settings.confirmation_stale_s
        alerts.add_check(StaleConfirmations(alerts, confirmations, age_s, time.time))
    for d in settings.destinations:
        log.info("alerts: %s (%s): %s", d.name, d.format, ", ".join(sorted(d.events)))
    return alerts
