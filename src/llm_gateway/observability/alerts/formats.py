"""An alert as each destination's webhook wants it: Slack's message, PagerDuty's event.

Slack (an incoming webhook): ``text``, the notification's fallback, and
``blocks``: a ``header`` with the summary, a ``section`` of ``fields`` (one per
detail, at most ten, as Slack allows) and a ``context`` line (kind, severity,
source, time). Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>``
would ping a whole channel), so every value is escaped.

PagerDuty (Events API v2, ``POST /v2/enqueue``): ``routing_key``,
``event_action: trigger``, a ``dedup_key`` made of the kind and the alert's key
(so that every replica's and every repeat's event joins one open incident) and
the ``payload``: ``summary`` (at most 1024 characters), ``source``,
``severity`` (critical, error, warning, info), ``timestamp``, ``component`` (the
part of the gateway), ``group``, ``class`` (the event kind) and
``custom_details`` (the details).

What goes in is what the alert carries: counts, entity types, ids, model,
team and tenant names; never a prompt, an answer or a value DLP found (the
records the alerts come from hold none).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from llm_gateway.observability.alerts.alert import Alert

__all__ = ["dedup_key", "pagerduty", "slack"]

_ICON = {"critical": ":red_circle:", "error": ":red_circle:", "warning": ":warning:",
         "info": ":information_source:"}  # fmt: skip
_COMPONENT = {
    "dlp_block": "dlp", "dlp_alert": "dlp", "policy_error": "policy",
    "budget_exceeded": "ratelimit", "breaker_open": "routing", "audit_spool": "audit",
    "confirmation_stale": "hitl",
}  # fmt: skip
_SLACK_FIELDS = 10
_SLACK_HEADER = 150
_SLACK_FIELD = 2000
_PD_SUMMARY = 1024
_PD_DEDUP = 255


def slack(alert: Alert, source: str) -> dict[str, Any]:
    details = _details(alert)
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{_escape(k)}*\n{_escape(_text(v))}", _SLACK_FIELD)}
        for k, v in list(details.items())[:_SLACK_FIELDS]
    ]
    context = f"`{alert.kind}` · {alert.severity} · {_escape(source)} · {_iso(alert.at)}"
    header = {"type": "plain_text", "text": _clip(alert.summary, _SLACK_HEADER)}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": header}]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    icon = _ICON.get(alert.severity, "")
    return {"text": f"{icon} [{alert.severity}] {_escape(alert.summary)}", "blocks": blocks}


def pagerduty(alert: Alert, source: str, routing_key: str, group: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert),
        "client": "llm-gateway",
        "payload": {
            "summary": _clip(alert.summary, _PD_SUMMARY),
            "source": source,
            "severity": alert.severity,
            "timestamp": _iso(alert.at),
            "component": _COMPONENT.get(alert.kind, "gateway"),
            "group": group,
            "class": alert.kind,
            "custom_details": _details(alert),
        },
    }


def dedup_key(alert: Alert) -> str:
    """``llm-gateway/<kind>/<key>``, or its digest when longer than PagerDuty allows."""
    key = f"llm-gateway/{alert.kind}/{alert.key}"
    if len(key) <= _PD_DEDUP:
        return key
    return f"llm-gateway/{alert.kind}/{hashlib.sha256(alert.key.encode()).hexdigest()}"


def _details(alert: Alert) -> dict[str, Any]:
    details = dict(alert.details)
    if alert.repeats:
        details["repeats"] = alert.repeats  # like it, de-duplicated since the last one sent
    return details


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else str(value)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
