"""``GET /api/v1/reports/compliance`` on a real gateway (in-process) over a seeded run and
requests sent through it: an auditor's and an administrator's report cover their tenant
only, a plain user is refused, bad parameters are 400s with a code, the forms have their
content types, and the report is itself an audited action."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.reports.compliance import compliance_report
from llm_gateway.reports.evidence import Scope
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.reports.seed import END, PERIOD, START, seed_sync

SSN = "536-22-8726"  # accepted by the detector (tests/e2e/dlp_support.py)
AWS_KEY_ID = "AKIAZ7Q3M4N5P6R2T8XW"
PATH = "/api/v1/reports/compliance"


@pytest.fixture(scope="module")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("reports-api")
    url = f"sqlite:///{tmp}/data/gateway.db"
    seed_sync(url)
    gateway = start_gateway(tmp, emulator.base_url, url)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def report(gw: Gateway, token: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{gw.base_url}{PATH}", params={"framework": "soc2", **PERIOD, **params},
        headers={"authorization": f"Bearer {token}"}, timeout=60,
    )  # fmt: skip


def auditor(gw: Gateway, tenant: str) -> str:
    return gw.token("audrey", role="auditor", tenant=tenant)


def items_of(body: dict[str, Any]) -> dict[str, Any]:
    return {e["key"]: e["item"] for c in body["controls"] for e in c["evidence"] if e["item"]}


def chat(gw: Gateway, text: str, **claims: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/api/v1/chat",
        json={"model": "gpt-emu", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {gw.token('wendy', tenant='wayne', **claims)}"},
        timeout=30,
    )


def test_a_report_counts_the_requests_sent_through_the_gateway(gw: Gateway) -> None:
    assert chat(gw, "hello").status_code == 200
    assert chat(gw, "hello again").status_code == 200
    assert chat(gw, "hi", tier="free").status_code == 403  # gpt-emu is not the free tier's
    assert chat(gw, f"my SSN is {SSN}").status_code == 200  # redacted
    assert chat(gw, f"key {AWS_KEY_ID}").status_code == 400  # blocked
    rows = gw.audit_rows(AuditLog.tenant == "wayne")
    answer = report(gw, auditor(gw, "wayne"), **{"from": "2020-01-01", "to": "2100-01-01"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    items = items_of(body)
    assert body["requests"] == len(rows) == 5
    assert items["access_decisions"]["counts"] == dict(Counter(r.policy_decision for r in rows))
    assert items["access_decisions"]["counts"] == {"allow": 4, "deny": 1}
    assert items["access_refusals"]["counts"] == {"policy_denied": 1}
    assert items["dlp_events"]["counts"] == {"redact": 1, "block": 1}
    assert items["pii_redacted"]["counts"] == {"US_SSN": 1}
    assert items["secrets_blocked"]["counts"] == {"AWS_ACCESS_KEY": 1}
    blocked = next(r.request_id for r in rows if r.error_code == "dlp_blocked")
    assert items["secrets_blocked"]["examples"] == [blocked]
    assert body["integrity"]["intact"]
    assert body["integrity"]["rows"] == 5
    assert body["tenant"] == "wayne"
    # the report itself is an audited action of the auditor's tenant
    own = gw.audit_row(answer.headers["x-request-id"])
    assert (own.endpoint, own.tenant, own.status, own.policy_decision) == (
        "reports.read", "wayne", 200, "allow",
    )  # fmt: skip


def test_the_report_is_the_seeded_tenants_own(gw: Gateway) -> None:
    async def direct(tenant: str) -> dict[str, Any]:
        db = Database(async_driver_url(gw.database_url))
        try:
            built = await compliance_report(db, "gdpr", Scope(START, END, tenant=tenant))
        finally:
            await db.dispose()
        return built.model_dump(mode="json")

    for tenant in ("acme", "globex"):
        expected = asyncio.run(direct(tenant))  # before: the report's own row is not in it
        answer = report(gw, auditor(gw, tenant), framework="gdpr")
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert items_of(got) == items_of(expected)
        assert got["requests"] == expected["requests"]
    acme = items_of(report(gw, auditor(gw, "acme")).json())
    globex = items_of(report(gw, auditor(gw, "globex")).json())
    for tenant, items in (("acme", acme), ("globex", globex)):
        examples = {e for i in items.values() for e in i["examples"]}
        examples -= {e for e in examples if e.startswith("prune-")}  # in audit_prunes too
        rows = gw.audit_rows(AuditLog.request_id.in_(examples))
        assert len(rows) == len(examples)
        assert {r.tenant for r in rows} == {tenant}
    assert acme["retention"]["counts"] == {"cuts": 1, "rows removed": 40}
    assert globex["retention"]["total"] == 0
    admin = gw.token("root", role="admin", tenant="globex")
    reads = gw.audit_rows(AuditLog.tenant == "globex", AuditLog.endpoint == "reports.read")
    decisions = items_of(report(gw, admin).json())["access_decisions"]["counts"]
    assert decisions == {"deny": 6, "allow": len(reads)}  # the reports' own rows allowed


@pytest.mark.parametrize("role", ["user", "service"])
def test_a_plain_user_may_not_read_a_report(gw: Gateway, role: str) -> None:
    answer = report(gw, gw.token("bob", role=role, tenant="acme"))
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "policy_denied"
    row = gw.audit_row(answer.headers["x-request-id"])
    assert (row.endpoint, row.policy_decision) == ("reports.read", "deny")


def test_no_credential_is_a_401(gw: Gateway) -> None:
    answer = httpx.get(f"{gw.base_url}{PATH}", params={"framework": "soc2"})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_credentials"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-45"}, "to"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"from": "2026-03-01", "to": "2026-03-01"}, "to"),
        ({"framework": "iso27001"}, "framework"),
        ({"framework": ""}, "framework"),
        ({"format": "docx"}, "format"),
    ],
)
def test_bad_parameters_are_400s_naming_them(
    gw: Gateway, params: dict[str, str], param: str
) -> None:
    answer = report(gw, auditor(gw, "acme"), **params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_field", param)
    assert error["request_id"] == answer.headers["x-request-id"]


def test_a_missing_framework_is_a_400(gw: Gateway) -> None:
    answer = httpx.get(
        f"{gw.base_url}{PATH}", headers={"authorization": f"Bearer {auditor(gw, 'acme')}"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "framework"


def test_html_and_pdf_have_their_content_types(gw: Gateway) -> None:
    token = auditor(gw, "acme")
    html = report(gw, token, format="html")
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "CC6.1" in html.text
    assert html.text.count("<svg") == 3
    pdf = report(gw, token, format="pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"].startswith('attachment; filename="compliance-soc2-')
    by_accept = httpx.get(
        f"{gw.base_url}{PATH}", params={"framework": "hipaa", **PERIOD},
        headers={"authorization": f"Bearer {token}", "accept": "text/html,*/*"}, timeout=60,
    )  # fmt: skip
    assert by_accept.headers["content-type"].startswith("text/html")
    assert "164.312(b)" in by_accept.text


def test_pdf_without_the_reports_extra_is_a_501(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "reportlab" or m.startswith("reportlab.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed (in-process gateway)
    answer = report(gw, auditor(gw, "acme"), format="pdf")
    assert answer.status_code == 501, answer.text
    error = answer.json()["error"]
    assert error["code"] == "report_format_unavailable"
    assert "llm-gateway[reports]" in error["message"]
    assert report(gw, auditor(gw, "acme")).status_code == 200  # JSON needs no extra


@pytest.mark.parametrize("form", ["json", "html", "pdf"])
def test_the_widest_period_is_answered(gw: Gateway, form: str) -> None:
    wide = {"from": "0001-01-01", "to": "9999-12-31T23:59:59Z", "format": form}
    answer = report(gw, auditor(gw, "acme"), **wide)
    assert answer.status_code == 200, answer.text[:500]
    if form == "json":
        assert answer.json()["requests"] >= 37
    elif form == "html":
        assert answer.text.count("<rect") <= 3 * 62
    else:
        assert answer.content.startswith(b"%PDF-")


def test_openapi_documents_the_report_and_its_forms(gw: Gateway) -> None:
    document = httpx.get(f"{gw.base_url}/openapi.json").json()
    doc = document["paths"][PATH]["get"]
    assert {p["name"] for p in doc["parameters"]} == {"framework", "from", "to", "format"}
    assert {"200", "400", "401", "403", "501"} <= set(doc["responses"])
    content = doc["responses"]["200"]["content"]
    assert {"application/json", "text/html", "application/pdf"} <= set(content)
    schema = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "controls" in document["components"]["schemas"][schema]["properties"]
