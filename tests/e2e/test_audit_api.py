"""Reading the audit trail: ``GET /api/v1/audit`` (filters, cursor pages, the caller's
tenant only, the policy's ``audit.read``), ``GET /api/v1/audit/{request_id}``, and
``llm-gateway audit export`` as JSON lines and CSV; never a prompt or an answer."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.audit.sinks import sink_for
from llm_gateway.audit.writer import AuditWriter
from llm_gateway.emulators import EmulatorServer
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from llm_gateway.storage.audit_query import FIELDS
from tests.audit.test_writer import _row
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.e2e.test_audit_postgres import cli_env
from tests.harness import run_cli

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
EMAIL_FOUND = json.dumps(
    [{"entity": "EMAIL", "direction": "request", "count": 1, "action": "redact"}],
    separators=(",", ":"),
)


def seeded() -> list[dict[str, Any]]:
    """25 acme rows and 5 globex rows on 2026-03-01, a minute apart, of known kinds."""
    rows = []
    for i in range(25):
        kind = i % 5
        rows.append(_row(
            f"acme-{i:02d}", tenant="acme", timestamp=T0 + timedelta(minutes=i),
            user_id="alice" if i % 2 else "bob", team="red" if i < 10 else "blue",
            model="gpt-emu" if kind != 4 else "claude-emu",
            status=403 if kind == 3 else 200,
            error_code="policy_denied" if kind == 3 else None,
            policy_decision="deny" if kind == 3 else ("error" if i == 7 else "allow"),
            dlp_findings=EMAIL_FOUND if kind == 1 else None,
            prompt_sha256="ab" * 32, prompt_chars=12,
        ))  # fmt: skip
    for i in range(5):
        rows.append(_row(
            f"globex-{i}", tenant="globex", timestamp=T0 + timedelta(minutes=i),
            user_id="alice", policy_decision="allow", dlp_findings=EMAIL_FOUND,
        ))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def audit_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("audit-api")
    url = f"sqlite:///{tmp}/data/gateway.db"

    async def seed() -> None:
        db = Database(async_driver_url(url))
        try:
            await db.upgrade()
            writer = AuditWriter(sink_for(db))
            writer.start()
            await asyncio.gather(*(writer.write(r) for r in seeded()))
            await writer.close()
        finally:
            await db.dispose()

    (tmp / "data").mkdir()
    asyncio.run(seed())
    gw = start_gateway(tmp, emulator.base_url, url)
    try:
        yield gw
    finally:
        stop_gateway(gw)


def get(gw: Gateway, token: str, path: str = "", **params: Any) -> httpx.Response:
    return httpx.get(
        f"{gw.base_url}/api/v1/audit{path}", params=params,
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip


def auditor(gw: Gateway, tenant: str = "acme") -> str:
    return gw.token("audrey", role="auditor", tenant=tenant)


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["request_id"] for r in answer.json()["rows"]]


def acme(*numbers: int) -> list[str]:
    return [f"acme-{i:02d}" for i in numbers]


def test_an_auditor_reads_their_tenants_rows_newest_first(audit_gateway: Gateway) -> None:
    answer = get(audit_gateway, auditor(audit_gateway), **WINDOW)
    assert ids(answer) == acme(*range(24, -1, -1))  # globex's rows are not acme's
    row = answer.json()["rows"][0]
    assert set(row) == set(FIELDS)
    assert row["timestamp"] == "2026-03-01T00:24:00Z"
    assert (row["prompt_sha256"], row["prompt_chars"]) == ("ab" * 32, 12)
    assert not {"prompt", "response", "messages", "content"} & set(row)  # digests only
    assert answer.json()["next_cursor"] is None
    theirs = get(audit_gateway, auditor(audit_gateway, "globex"), **WINDOW)
    assert ids(theirs) == [f"globex-{i}" for i in range(4, -1, -1)]
    admin = audit_gateway.token("root", role="admin", tenant="globex")
    assert len(ids(get(audit_gateway, admin, **WINDOW))) == 5  # admins too: their tenant only


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"user": "alice"}, [i for i in range(24, -1, -1) if i % 2]),
        ({"team": "red"}, list(range(9, -1, -1))),
        ({"model": "claude-emu"}, [24, 19, 14, 9, 4]),
        ({"status": "403"}, [23, 18, 13, 8, 3]),
        ({"error_code": "policy_denied"}, [23, 18, 13, 8, 3]),
        ({"decision": "deny"}, [23, 18, 13, 8, 3]),
        ({"decision": "error"}, [7]),
        ({"finding": "EMAIL"}, [21, 16, 11, 6, 1]),
        ({"finding": "PHONE"}, []),
        ({"from": "2026-03-01T00:20:00Z", "to": "2026-03-01T00:22:00Z"}, [21, 20]),
        ({"user": "alice", "decision": "deny", "team": "blue"}, [23, 13]),
    ],
)  # fmt: skip
def test_filters(audit_gateway: Gateway, params: dict[str, str], expected: list[int]) -> None:
    query = {**WINDOW, **params}
    assert ids(get(audit_gateway, auditor(audit_gateway), **query)) == acme(*expected)


def test_pages_follow_the_cursor_to_the_end(audit_gateway: Gateway) -> None:
    token, seen, cursor = auditor(audit_gateway), [], None
    pages = 0
    while True:
        params = {**WINDOW, "limit": "10"} | ({"cursor": cursor} if cursor else {})
        answer = get(audit_gateway, token, **params)
        seen += ids(answer)
        pages += 1
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
        # a row written meanwhile (newer) does not shift the pages
        get(audit_gateway, token, **WINDOW)
    assert pages == 3
    assert seen == acme(*range(24, -1, -1))
    assert len(ids(get(audit_gateway, token, limit="500", **WINDOW))) == 25


def test_one_row_by_request_id(audit_gateway: Gateway) -> None:
    answer = get(audit_gateway, auditor(audit_gateway), "/acme-03")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["request_id"], answer.json()["status"]) == ("acme-03", 403)
    for token, request_id in [(auditor(audit_gateway), "nope"),
                              (auditor(audit_gateway, "globex"), "acme-03")]:  # fmt: skip
        missing = get(audit_gateway, token, f"/{request_id}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "audit_record_not_found"


def test_the_reads_are_audited_as_audit_read(audit_gateway: Gateway) -> None:
    token = auditor(audit_gateway)
    answer = get(audit_gateway, token, **WINDOW)
    request_id = answer.headers["x-request-id"]
    own = get(audit_gateway, token, f"/{request_id}")
    assert own.status_code == 200, own.text
    assert (own.json()["endpoint"], own.json()["tenant"]) == ("audit.read", "acme")


@pytest.mark.parametrize(
    ("params", "param"),
    [({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
     ({"from": "2026-03-02", "to": "2026-03-01"}, "to"), ({"status": "ok"}, "status"),
     ({"status": "999"}, "status"), ({"status": "²"}, "status"),
     ({"decision": "maybe"}, "decision"),
     ({"finding": "EMAIL%"}, "finding"), ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"),
     ({"limit": "ten"}, "limit"), ({"cursor": "not-a-cursor"}, "cursor"),
     ({"cursor": "eyJiZWZvcmUiOiJ4In0"}, "cursor")],
)  # fmt: skip
def test_a_bad_filter_is_a_400_naming_it(
    audit_gateway: Gateway, params: dict[str, str], param: str
) -> None:
    answer = get(audit_gateway, auditor(audit_gateway), **params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_field", param)
    assert error["message"].startswith(f"{param}:")


def test_a_plain_user_is_denied_by_the_policy(audit_gateway: Gateway) -> None:
    for path in ("", "/acme-01"):
        answer = get(audit_gateway, audit_gateway.token("alice", tenant="acme"), path)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "policy_denied"
    assert httpx.get(f"{audit_gateway.base_url}/api/v1/audit").status_code == 401


def test_export_as_json_lines_and_csv(audit_gateway: Gateway, tmp_path: Path) -> None:
    env = cli_env(audit_gateway.database_url)
    window = ["--from", WINDOW["from"], "--to", WINDOW["to"]]
    out = tmp_path / "acme.jsonl"
    done = run_cli(["audit", "export", "--format", "jsonl", "--tenant", "acme", *window,
                    "--out", str(out)], env, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exported 25 rows" in done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["request_id"] for r in lines] == acme(*range(25))  # oldest first
    assert set(lines[0]) == set(FIELDS)
    assert lines[1]["dlp_findings"] == json.loads(EMAIL_FOUND)
    assert {r["chain_hash"] is not None for r in lines} == {True}
    every = run_cli(["audit", "export", "--format", "csv", *window], env, tmp_path)
    assert every.returncode == 0, every.stderr
    table = list(csv.DictReader(every.stdout.splitlines()))
    assert len(table) == 30  # both tenants
    assert tuple(table[0]) == FIELDS
    first_found = next(r for r in table if r["request_id"] == "acme-01")
    assert json.loads(first_found["dlp_findings"])[0]["entity"] == "EMAIL"
    assert first_found["error_code"] == ""
    bad = run_cli(["audit", "export", "--from", "soon"], env, tmp_path)
    assert bad.returncode == 1
    assert "--from/--to" in bad.stderr
