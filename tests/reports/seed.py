"""A seeded run: a tenant's audit rows of every kind a compliance report counts, written by
the audit writer (chained, as the gateway writes them), and a retention cut.

``acme`` has allowed, denied and refused calls, DLP redactions (personal data) and blocks
(a credential), confirmations, management actions, errors and two policy revisions over
three days; ``globex`` has rows of its own that acme's report must not count; 40 old acme
rows are pruned (a retention cut inside the period).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from llm_gateway.audit.integrity import prune
from llm_gateway.audit.sinks import sink_for
from llm_gateway.audit.writer import AuditWriter
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from tests.audit.test_writer import _row

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
#: The seeded days: three, ending the day before yesterday.
DAY0 = TODAY - timedelta(days=4)
START = DAY0
END = TODAY + timedelta(days=1)  # the retention cut (pruned_at: now) falls inside
PERIOD = {"from": START.isoformat(), "to": END.isoformat()}
OLD = TODAY - timedelta(days=60)


def findings(*items: tuple[str, str, int, str]) -> str:
    return json.dumps(
        [{"entity": e, "direction": d, "count": n, "action": a} for e, d, n, a in items],
        separators=(",", ":"),
    )


def acme_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(kind: str, day: int, **extra: Any) -> None:
        n = len(rows)
        base = {
            "tenant": "acme", "user_id": "alice" if n % 2 else "bob", "team": "red",
            "timestamp": DAY0 + timedelta(days=day, minutes=n), "auth_method": "jwt",
            "policy_decision": "allow", "policy_revision": "rev-1" if day < 2 else "rev-2",
            "provider": "openai",
        }  # fmt: skip
        rows.append(_row(f"acme-{kind}-{n:03d}", **(base | extra)))

    for day in range(3):
        for _ in range(4 + day):
            add("ok", day)
    for day in (0, 2):
        add("denied", day, status=403, error_code="policy_denied", policy_decision="deny",
            provider=None, model=None)  # fmt: skip
    add("policyerror", 1, status=403, error_code="policy_error", policy_decision="error",
        provider=None)  # fmt: skip
    add("forbidden", 1, status=403, error_code="permission_denied", policy_decision=None,
        auth_method="api_key", endpoint="audit.read", provider=None)  # fmt: skip
    for day in range(3):
        add("redacted", day, dlp_action="redact",
            dlp_findings=findings(("EMAIL_ADDRESS", "request", 2, "redact"),
                                  ("PHONE_NUMBER", "request", 1, "redact")))  # fmt: skip
    add("redacted", 2, dlp_action="redact",
        dlp_findings=findings(("US_SSN", "response", 1, "redact")))  # fmt: skip
    add("blocked", 1, status=400, error_code="dlp_blocked", dlp_action="block", provider=None,
        dlp_findings=findings(("AWS_ACCESS_KEY", "request", 1, "block"),
                              ("EMAIL_ADDRESS", "request", 1, "redact")))  # fmt: skip
    add("alert", 0, dlp_action="alert", dlp_findings=findings(("ACME_ID", "request", 3, "alert")))
    for event in ("challenged", "details", "confirmed"):
        add("confirm", 1, endpoint="native", confirmation=f"cf_1:{event}")
    for event in ("challenged", "cancelled"):
        add("confirm", 2, endpoint="native", confirmation=f"cf_2:{event}")
    add("approve", 2, endpoint="confirmation.approve", confirmation="cf_3:api-approved",
        provider=None)  # fmt: skip
    for endpoint in ("audit.read", "usage.read", "usage.read"):
        add("manage", 2, endpoint=endpoint, provider=None, model=None)
    add("timeout", 0, status=504, error_code="upstream_timeout")
    add("ratelimited", 1, status=429, error_code="rate_limited", provider=None)
    return rows


def globex_rows() -> list[dict[str, Any]]:
    rows = [
        _row(f"globex-{i}", tenant="globex", timestamp=DAY0 + timedelta(hours=i),
             policy_decision="deny", status=403, error_code="policy_denied", dlp_action="block",
             dlp_findings=findings(("AWS_ACCESS_KEY", "request", 1, "block")))
        for i in range(6)
    ]  # fmt: skip
    # no principal: no tenant (an unauthenticated request)
    rows += [
        _row(f"anon-{i}", tenant=None, user_id=None, auth_method=None, status=401,
             error_code="invalid_credentials", timestamp=DAY0 + timedelta(hours=i))
        for i in range(3)
    ]  # fmt: skip
    return rows


def old_rows() -> list[dict[str, Any]]:
    return [
        _row(f"acme-old-{i:02d}", tenant="acme", timestamp=OLD + timedelta(minutes=i))
        for i in range(40)
    ]


async def seed(database_url: str) -> None:
    """Write the run's rows into a migrated database, then prune acme's old rows."""
    db = Database(async_driver_url(database_url))
    try:
        await db.upgrade()
        writer = AuditWriter(sink_for(db))
        writer.start()
        for batch in (old_rows(), acme_rows(), globex_rows()):
            for row in batch:  # one by one: the chain in time order
                await writer.write(row)
        await writer.close()
        await prune(db, "acme", TODAY - timedelta(days=30), "tests:seed")
    finally:
        await db.dispose()


def seed_sync(database_url: str) -> None:
    asyncio.run(seed(database_url))
