"""Each framework's report from a seeded run, on SQLite and PostgreSQL: every count is
checked against the rows themselves (read back whole and counted here, not by the SQL
the report uses), a tenant's report counts only its rows, and a broken chain is an
exception."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update

from llm_gateway.reports.compliance import ComplianceReport, compliance_report
from llm_gateway.reports.evidence import Scope, gather
from llm_gateway.reports.frameworks import FRAMEWORKS
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from llm_gateway.storage.models import AuditLog, AuditPrune
from llm_gateway.storage.usage import CHAT_ENDPOINTS
from tests.reports.seed import END, START, seed

ACME = Scope(START, END, tenant="acme")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await seed(database_url)
    database = Database(async_driver_url(database_url))
    yield database
    await database.dispose()


async def rows_of(db: Database, tenant: str | None) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        query = (
            select(AuditLog.__table__)
            .where(AuditLog.timestamp >= START, AuditLog.timestamp < END)
            .order_by(AuditLog.id)
        )
        found = [dict(r) for r in (await conn.execute(query)).mappings()]
    return [r for r in found if r["tenant"] == tenant]


def counted(rows: list[dict[str, Any]], column: str) -> dict[str, int]:
    return dict(Counter(str(r[column]) for r in rows if r[column] is not None))


def spans(rows: list[dict[str, Any]], category: set[str], action: str) -> dict[str, int]:
    out: Counter[str] = Counter()
    for r in rows:
        for f in json.loads(r["dlp_findings"] or "[]"):
            if f["entity"] in category and f["action"] == action:
                out[f["entity"]] += f["count"]
    return dict(out)


def examples_hold(examples: list[str], rows: list[dict[str, Any]], column: str) -> None:
    by_id = {r["request_id"]: r for r in rows}
    assert examples, f"no example for {column}"
    assert all(by_id[e][column] is not None for e in examples)


async def test_the_evidence_counts_are_the_rows_counts(db: Database) -> None:
    evidence = await gather(db, ACME)
    rows = await rows_of(db, "acme")
    items = evidence.items
    assert evidence.requests == len(rows) == items["records"].total
    chat = sum(r["endpoint"] in CHAT_ENDPOINTS for r in rows)
    assert items["records"].counts == {"chat calls": chat, "management actions": len(rows) - chat}
    assert items["access_decisions"].counts == counted(rows, "policy_decision")
    assert set(items["access_decisions"].counts) == {"allow", "deny", "error"}
    refused = [r for r in rows if r["status"] in (401, 403)]
    assert items["access_refusals"].counts == counted(refused, "error_code")
    assert items["access_refusals"].total == 4
    assert set(items["access_refusals"].examples) <= {r["request_id"] for r in refused}
    assert items["authentication"].counts == counted(rows, "auth_method")
    assert items["dlp_events"].counts == counted(rows, "dlp_action") == {
        "redact": 4, "block": 1, "alert": 1,
    }  # fmt: skip
    examples_hold(items["dlp_events"].examples, rows, "dlp_action")
    pii = {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN"}
    assert items["pii_redacted"].counts == spans(rows, pii, "redact") == {
        "EMAIL_ADDRESS": 7, "PHONE_NUMBER": 3, "US_SSN": 1,
    }  # fmt: skip
    assert items["secrets_blocked"].counts == spans(rows, {"AWS_ACCESS_KEY"}, "block")
    assert [e.split("-")[1] for e in items["secrets_blocked"].examples] == ["blocked"]
    redacted = [r["request_id"] for r in rows if '"action":"redact"' in (r["dlp_findings"] or "")]
    assert items["pii_redacted"].examples == redacted[::-1]  # newest first
    events = Counter(r["confirmation"].split(":")[1] for r in rows if r["confirmation"])
    assert items["confirmations"].counts == dict(events)
    assert events["challenged"] == 2
    assert all(e.startswith("acme-confirm") for e in items["confirmations"].examples)
    management = [r for r in rows if r["endpoint"] not in CHAT_ENDPOINTS]
    assert items["management_actions"].counts == counted(management, "endpoint") == {
        "audit.read": 2, "usage.read": 2, "confirmation.approve": 1, "audit.prune": 1,
    }  # fmt: skip
    assert items["policy_revisions"].counts == counted(rows, "policy_revision")
    assert items["providers"].counts == counted(rows, "provider")
    assert items["errors"].counts == counted(rows, "error_code")


async def test_findings_retention_days_and_the_chain(db: Database) -> None:
    evidence = await gather(db, ACME)
    rows = await rows_of(db, "acme")
    by_key = {(f.entity, f.direction, f.action): f for f in evidence.findings}
    email = by_key["EMAIL_ADDRESS", "request", "redact"]
    assert (email.category, email.findings, email.requests) == ("pii", 7, 4)
    assert by_key["AWS_ACCESS_KEY", "request", "block"].category == "secret"
    assert by_key["ACME_ID", "request", "alert"].category == "custom"
    assert evidence.items["outbound_screening"].counts == {
        "request: redact": 10, "response: redact": 1, "request: block": 1, "request: alert": 3,
    }  # fmt: skip
    async with db.engine.connect() as conn:
        cuts = (await conn.execute(select(AuditPrune.rows, AuditPrune.request_id))).all()
    assert evidence.items["retention"].counts == {"cuts": 1, "rows removed": 40}
    assert evidence.items["retention"].examples == [cuts[0][1]]
    per_day = Counter(r["timestamp"].date().isoformat() for r in rows)
    assert {d.day: d.requests for d in evidence.days} == dict(per_day)
    assert sum(d.refusals for d in evidence.days) == 4
    assert sum(d.dlp_events for d in evidence.days) == 6
    assert evidence.integrity.intact
    assert evidence.integrity.rows == len(rows)  # the prune's own row (today) included


async def test_a_tenants_report_counts_only_its_rows(db: Database) -> None:
    globex = await gather(db, Scope(START, END, tenant="globex"))
    assert globex.requests == 6
    assert globex.items["access_decisions"].counts == {"deny": 6}
    assert globex.items["secrets_blocked"].counts == {"AWS_ACCESS_KEY": 6}
    assert globex.items["retention"].total == 0
    assert all(e.startswith("globex-") for e in globex.items["access_refusals"].examples)
    anonymous = await gather(db, Scope(START, END, tenant=None))
    assert anonymous.items["authentication"].counts == {"none": 3, "failed (401)": 3}
    everyone = await gather(db, Scope(START, END, all_tenants=True))
    assert everyone.requests == len(await rows_of(db, "acme")) + 6 + 3
    assert everyone.integrity.chains == 3


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
async def test_each_frameworks_controls_carry_the_evidence(db: Database, framework: str) -> None:
    report = await compliance_report(db, framework, ACME)
    evidence = await gather(db, ACME)
    assert report.framework == framework
    assert [c.id for c in report.controls] == [c.id for c in FRAMEWORKS[framework].controls]
    for control in report.controls:
        assert control.status == "evidenced", control.id
        for item in control.evidence:
            if item.key == "integrity":
                assert item.integrity is not None
                assert item.integrity.intact
            else:
                assert item.item == evidence.items[item.key], (control.id, item.key)
    assert report.requests == evidence.requests
    assert "not a certification" in report.disclaimer


async def test_an_empty_period_has_no_activity_and_a_broken_chain_is_an_exception(
    db: Database,
) -> None:
    quiet = await compliance_report(db, "soc2", Scope(START, END, tenant="initech"))
    assert {c.status for c in quiet.controls} == {"no activity"}
    async with db.engine.begin() as conn:
        await conn.execute(
            update(AuditLog).where(AuditLog.request_id == "acme-ok-003").values(tokens_in=999)
        )
    report: ComplianceReport = await compliance_report(db, "hipaa", ACME)
    integrity = next(c for c in report.controls if c.id == "164.312(c)(1)")
    assert integrity.status == "exception"
    assert report.integrity.request_id == "acme-ok-003"
    assert "was edited" in (report.integrity.problem or "")
    access = next(c for c in report.controls if c.id == "164.312(a)(1)")
    assert access.status == "evidenced"
