"""What the gateway says about a confirmation: the challenge, and its answers to replies.

Each is the assistant's text (so any chat client shows it) and, for the
challenge, a machine-readable ``confirmation`` object. The text names the
confirmation's id on its last line: that is how a conversation without
``X-Conversation-Id`` is recognised when the caller replies (the id is in the
history the client sends back).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from llm_gateway.hitl.confirmations import Confirmation

#: A confirmation's id as the challenge's text shows it.
ID_IN_TEXT = re.compile(r"\bConfirmation id: (cf_[0-9a-f]{24})\b")

CANCEL = "cancel"
SHOW_DETAILS = "show details"

#: How risky a change is, by the environment it touches.
RISK = {"production": "high", "prod": "high", "staging": "medium"}


def risk_of(environment: str | None) -> str:
    return RISK.get((environment or "").lower(), "low")


def confirmation_object(c: Confirmation) -> dict[str, Any]:
    return {
        "id": c.id,
        "status": c.status,
        "action": c.verb,
        "scope": list(c.scope),
        "environment": c.environment,
        "risk": risk_of(c.environment),
        "phrase": c.phrase,
        "expires_at": _iso(c.expires_at),
        "requires_mfa": c.requires_mfa,
        "approvers": list(c.approvers),
        "cost_impact_usd": c.cost_impact_usd,
    }


def challenge_text(c: Confirmation, *, tool_name: str | None, shown: list[str]) -> str:
    what = f"{c.verb.upper()} ({tool_name})" if tool_name else c.verb.upper()
    lines = ["[STOP] This action requires confirmation.", "", f"Action: {what}"]
    if c.scope:
        lines.append(f"Scope: {len(c.scope)} item{'s' if len(c.scope) != 1 else ''}")
    if c.environment:
        lines.append(f"Environment: {c.environment} ({risk_of(c.environment).upper()} RISK)")
    if shown:
        lines += ["", *(f"• {item}" for item in shown)]
    if c.cost_impact_usd is not None:
        lines += ["", f"Estimated cost impact: ${c.cost_impact_usd:,.2f}"]
    lines += ["", f"Type '{c.phrase}' to proceed", f"Type '{CANCEL}' to abort"]
    if c.scope:
        lines.append(f"Type '{SHOW_DETAILS}' for the full list")
    if c.approvers:
        lines.append(f"Approval needed from: {', '.join(c.approvers)}")
    return "\n".join([*lines, f"Confirmation id: {c.id}"])


def details_text(c: Confirmation) -> str:
    items = [f"• {item}" for item in c.scope] or ["(no list of items)"]
    return "\n".join(
        [f"Everything '{c.phrase}' would release:", *items, "",
         f"Type '{c.phrase}' to proceed, or '{CANCEL}' to abort.", f"Confirmation id: {c.id}"]
    )  # fmt: skip


def reply_text(c: Confirmation, said: str) -> str:
    return f"{said}\nConfirmation id: {c.id}"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
