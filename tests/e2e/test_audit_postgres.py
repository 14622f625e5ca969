"""Audit rows on PostgreSQL (and the same checks on SQLite): every outcome leaves its row.

A gateway on PostgreSQL does not migrate its database: ``llm-gateway db upgrade``
runs first, as an operator would. Then an answered request (200, tokens, cost),
a refused one (401) and a failed one (502) must each have their row with the
right columns, the product specification's cost query must run verbatim on the
table, and a burst of concurrent requests must leave one row per request.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.pipeline.authorize import unknown_model
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway, directive, start_gateway, stop_gateway
from tests.harness import run_cli

#: The specification's cost report, verbatim.
SPEC_COST_QUERY = """SELECT user_id, model, SUM(tokens_used) as total_tokens, SUM(cost_usd) as total_cost FROM audit_logs WHERE timestamp > NOW() - INTERVAL '30 days' GROUP BY user_id, model ORDER BY total_cost DESC;"""  # noqa: E501

#: $ per million tokens (input, output), as the harness's pricing.yaml sets them.
PRICES = {"gpt-emu": (1.0, 2.0), "claude-emu": (3.0, 15.0)}


def cost(model: str, tokens_in: int, tokens_out: int) -> float:
    price_in, price_out = PRICES[model]
    return (tokens_in * price_in + tokens_out * price_out) / 1e6


def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "JWT_", "API_"))}
    env["DATABASE_URL"] = database_url
    return env


def db_upgrade(database_url: str, cwd: os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``llm-gateway db upgrade`` (in-process: ``tests/harness.py``)."""
    return run_cli(["db", "upgrade"], cli_env(database_url), Path(cwd))


def pg(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query on PostgreSQL with asyncpg, outside SQLAlchemy."""
    import asyncpg

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database for this module's PostgreSQL gateway, dropped afterwards."""
    name = f"llm_gateway_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_admin_url
    pg(admin, f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_gateway(
    emulator: EmulatorServer, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("pg-gateway")
    done = db_upgrade(pg_url, tmp)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    gw = start_gateway(tmp, emulator.base_url, pg_url)
    try:
        yield gw
    finally:
        stop_gateway(gw)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[str, Gateway]:
    """(backend name, a gateway on it): the session's SQLite gateway, or the PostgreSQL one."""
    name = request.param
    fixture = "gateway" if name == "sqlite" else "pg_gateway"
    return name, request.getfixturevalue(fixture)


# --- the three outcomes ----------------------------------------------------------


def answered(gateway: Gateway, user: str) -> tuple[str, str]:
    """Two answered requests: (OpenAI door, gpt-emu) and (Anthropic door streamed, claude-emu)."""
    token = gateway.token(user, team="blue", tenant="acme")
    prompt = directive("one two three", usage={"input": 1000, "output": 2000})
    with gateway.http() as http:
        first = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {token}"},
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": prompt}]},
        )
        prompt = directive("four five", usage={"input": 100, "output": 200})
        second = http.post(
            "/v1/messages",
            headers={"x-api-key": token},
            json={"model": "claude-emu", "max_tokens": 50, "stream": True,
                  "messages": [{"role": "user", "content": prompt}]},
        )  # fmt: skip
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert "message_stop" in second.text
    return first.headers["x-request-id"], second.headers["x-request-id"]


def refused(gateway: Gateway) -> str:
    with gateway.http() as http:
        response = http.post(
            "/api/v1/chat",
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 401, response.text
    return response.headers["x-request-id"]


def failed(gateway: Gateway, user: str) -> str:
    prompt = directive("hi", status=500)
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {gateway.token(user)}"},
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": prompt}]},
        )
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "upstream_error"
    return response.headers["x-request-id"]


def test_every_outcome_has_its_row(backend: tuple[str, Gateway]) -> None:
    name, gateway = backend
    user = f"audit-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    ok_id, stream_id = answered(gateway, user)
    refused_id = refused(gateway)
    failed_id = failed(gateway, user)

    ok = gateway.audit_row(ok_id)
    assert (ok.status, ok.error_code, ok.endpoint, ok.stream) == (200, None, "openai", False)
    assert (ok.user_id, ok.team, ok.tenant, ok.auth_method, ok.key_id) == (
        user, "blue", "acme", "jwt", None,
    )  # fmt: skip
    assert (ok.model_requested, ok.model, ok.provider, ok.upstream_model) == (
        "gpt-emu", "gpt-emu", "openai", "gpt-4o-mini",
    )  # fmt: skip
    assert (ok.tokens_in, ok.tokens_out, ok.tokens_used) == (1000, 2000, 3000)
    assert ok.tokens_estimated is False
    assert ok.cost_usd == pytest.approx(cost("gpt-emu", 1000, 2000))
    assert ok.latency_ms > 0
    assert ok.prompt_sha256 is not None
    assert len(ok.prompt_sha256) == 64
    assert ok.prompt_chars == len(directive("one two three", usage={"input": 1000, "output": 2000}))
    assert ok.response_sha256 is not None
    assert ok.response_chars == len("Echo: one two three")
    assert started - timedelta(seconds=5) <= ok.timestamp <= datetime.now(UTC)
    assert ok.timestamp.tzinfo is not None

    streamed = gateway.audit_row(stream_id)
    assert (streamed.status, streamed.endpoint, streamed.stream) == (200, "anthropic", True)
    assert (streamed.model, streamed.provider) == ("claude-emu", "anthropic")
    assert (streamed.tokens_in, streamed.tokens_out, streamed.tokens_used) == (100, 200, 300)
    assert streamed.cost_usd == pytest.approx(cost("claude-emu", 100, 200))

    no = gateway.audit_row(refused_id)
    assert (no.status, no.error_code, no.endpoint) == (401, "missing_credentials", "native")
    assert (no.user_id, no.auth_method, no.model_requested, no.model) == (None, None, None, None)
    assert (no.tokens_used, no.cost_usd, no.prompt_sha256) == (0, 0, None)

    bad = gateway.audit_row(failed_id)
    assert (bad.status, bad.error_code, bad.endpoint) == (502, "upstream_error", "openai")
    assert (bad.user_id, bad.model, bad.provider) == (user, "gpt-emu", "openai")
    assert (bad.tokens_used, bad.cost_usd, bad.response_sha256) == (0, 0, None)
    assert bad.prompt_sha256 is not None

    if name == "postgres":  # the same rows, read by PostgreSQL itself
        rows = pg(
            gateway.database_url,
            "SELECT request_id, status, error_code, user_id, tokens_used, cost_usd, timestamp "
            "FROM audit_logs WHERE request_id = ANY($1::text[])",
            [ok_id, stream_id, refused_id, failed_id],
        )
        by_id = {r["request_id"]: r for r in rows}
        assert set(by_id) == {ok_id, stream_id, refused_id, failed_id}
        assert (by_id[ok_id]["status"], by_id[ok_id]["tokens_used"]) == (200, 3000)
        assert isinstance(by_id[ok_id]["cost_usd"], float)
        assert by_id[ok_id]["timestamp"].tzinfo is not None  # timestamptz
        assert (by_id[refused_id]["status"], by_id[refused_id]["user_id"]) == (401, None)
        assert (by_id[failed_id]["status"], by_id[failed_id]["error_code"]) == (
            502,
            "upstream_error",
        )


@pytest.mark.postgres
def test_spec_cost_query_runs_verbatim(pg_gateway: Gateway) -> None:
    user = f"cost-{uuid.uuid4().hex[:8]}"
    answered(pg_gateway, user)
    answered(pg_gateway, user)
    failed(pg_gateway, user)
    refused(pg_gateway)
    # a row older than the report's window, which the query must leave out
    pg(
        pg_gateway.database_url,
        "INSERT INTO audit_logs (request_id, timestamp, user_id, endpoint, model, stream, status,"
        " latency_ms, tokens_in, tokens_out, tokens_used, tokens_estimated, cost_usd)"
        " VALUES ($1, NOW() - INTERVAL '40 days', $2, 'openai', 'gpt-emu', false, 200,"
        " 1.0, 500000, 500000, 1000000, false, 1.5)",
        uuid.uuid4().hex,
        user,
    )

    rows = pg(pg_gateway.database_url, SPEC_COST_QUERY)

    assert rows, "the cost query returned nothing"
    assert set(rows[0]) == {"user_id", "model", "total_tokens", "total_cost"}
    costs = [r["total_cost"] for r in rows]
    assert costs == sorted(costs, reverse=True)
    mine = {r["model"]: r for r in rows if r["user_id"] == user}
    assert set(mine) == {"gpt-emu", "claude-emu"}
    assert mine["gpt-emu"]["total_tokens"] == 2 * 3000  # the 502 adds no tokens
    assert mine["gpt-emu"]["total_cost"] == pytest.approx(2 * cost("gpt-emu", 1000, 2000))
    assert mine["claude-emu"]["total_tokens"] == 2 * 300
    assert mine["claude-emu"]["total_cost"] == pytest.approx(2 * cost("claude-emu", 100, 200))
    anonymous = [r for r in rows if r["user_id"] is None]
    assert anonymous  # refused requests are reported too, with no user and no cost
    assert all(r["total_cost"] == 0 for r in anonymous)


@pytest.mark.postgres
def test_gateway_does_not_migrate_postgresql(
    emulator: EmulatorServer, postgres_url: str, tmp_path: Path
) -> None:
    """On an empty PostgreSQL database the gateway stops at start-up and says what to run."""
    with pytest.raises(RuntimeError, match="llm-gateway db upgrade"):
        start_gateway(tmp_path, emulator.base_url, postgres_url)
    tables = pg(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == []


@pytest.mark.postgres
def test_db_upgrade_is_idempotent(pg_gateway: Gateway, tmp_path: Path) -> None:
    done = db_upgrade(pg_gateway.database_url, tmp_path)
    assert done.returncode == 0, done.stderr
    version = pg(pg_gateway.database_url, "SELECT version_num FROM alembic_version")
    assert len(version) == 1


# --- rows that must still be stored ---------------------------------------------


def test_oversized_identity_and_model_are_cut_to_fit(backend: tuple[str, Gateway]) -> None:
    """Long claims and model names are truncated to the column widths, never lost."""
    _, gateway = backend
    user = "u" * 300
    token = gateway.token(user, team="t" * 300, tenant="n" * 300)
    model = "m" * 300
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {token}"},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 404, response.text
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.status, row.error_code) == (404, "model_not_found")
    assert (row.user_id, row.team, row.tenant) == (user[:255], "t" * 255, "n" * 255)
    assert row.model_requested == unknown_model(model)


@pytest.fixture
def own_gateway(
    request: pytest.FixtureRequest, emulator: EmulatorServer, tmp_path: Path
) -> Iterator[tuple[str, Gateway]]:
    """A gateway of its own, for a test that may leave it broken: (backend, gateway)."""
    name = request.param
    if name == "postgres":
        url = request.getfixturevalue("postgres_url")
        done = db_upgrade(url, tmp_path)
        assert done.returncode == 0, done.stderr
    else:
        url = f"sqlite:///{tmp_path}/data/gateway.db"
    gw = start_gateway(tmp_path, emulator.base_url, url)
    try:
        yield name, gw
    finally:  # a wedged audit writer would hold a graceful stop for its whole timeout
        stop_gateway(gw, grace_s=3)


@pytest.mark.parametrize("own_gateway", BACKENDS, indirect=True)
def test_nul_character_in_model_name_is_audited_and_blocks_nobody(
    own_gateway: tuple[str, Gateway],
) -> None:
    """A caller-chosen model name goes into the audit row; a NUL in it must not lose the row,
    nor hold up the rows of everyone after it.

    PostgreSQL text cannot hold U+0000, so the row must be stored some other way
    (the character dropped or replaced) rather than rejected, and a row the
    database refuses must never block the audit queue.
    """
    _, gateway = own_gateway
    headers = {"authorization": f"Bearer {gateway.token()}"}
    answers: dict[str, httpx.Response | None] = {}
    with httpx.Client(base_url=gateway.base_url, timeout=3) as http:
        for name, model in (("nul", "gpt\u0000emu"), ("next", "gpt-emu")):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            try:
                answers[name] = http.post("/v1/chat/completions", headers=headers, json=body)
            except httpx.TimeoutException:
                answers[name] = None  # no answer within 3 s: the audit writer is stuck

    after = answers["next"]
    assert after is not None, "an ordinary request after it was not answered within 3 s"
    assert after.status_code == 200, after.text
    assert gateway.audit_row(after.headers["x-request-id"]).status == 200

    nul = answers["nul"]
    assert nul is not None, "the request for model 'gpt\\x00emu' was not answered within 3 s"
    assert nul.status_code == 404, nul.text
    assert nul.json()["error"]["code"] == "model_not_found"
    row = gateway.audit_row(nul.headers["x-request-id"])
    assert (row.status, row.error_code, row.model) == (404, "model_not_found", None)
    assert row.model_requested == unknown_model("gpt\u0000emu")


def test_abandoned_stream_is_recorded(backend: tuple[str, Gateway]) -> None:
    """A client that leaves mid-stream still gets its row, as status 499."""
    _, gateway = backend
    prompt = directive("hi", chunks=["a ", "b ", "c ", "d ", "e"], chunk_delay_ms=300)
    with gateway.http() as http, http.stream(
        "POST",
        "/api/v1/chat",
        headers={"authorization": f"Bearer {gateway.token()}"},
        json={"model": "ollama-emu", "stream": True,
              "messages": [{"role": "user", "content": prompt}]},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        next(response.iter_raw())  # the first event, then hang up
    row = gateway.audit_row(request_id, wait_s=3)
    assert (row.status, row.endpoint, row.stream, row.model) == (499, "native", True, "ollama-emu")


# --- concurrency -----------------------------------------------------------------

CONCURRENT = 50


async def burst(gateway: Gateway, user: str) -> list[tuple[str, int]]:
    """CONCURRENT requests at once over all three doors: answered, refused and failed."""
    token = gateway.token(user)
    text = directive("hello there", latency_ms=50)
    fail = directive("hello there", status=500)

    def request(i: int) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"authorization": f"Bearer {token}"}
        content = fail if i % 10 == 7 else text
        if i % 10 == 3:
            headers = {}
        messages = [{"role": "user", "content": content}]
        door = i % 3
        if door == 0:
            return "/v1/chat/completions", headers, {"model": "gpt-emu", "messages": messages}
        if door == 1:
            body = {"model": "claude-emu", "max_tokens": 20, "messages": messages}
            return "/v1/messages", headers, body
        return "/api/v1/chat", headers, {"model": "ollama-emu", "messages": messages}

    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60, limits=limits) as http:

        async def one(i: int) -> tuple[str, int]:
            path, headers, body = request(i)
            response = await http.post(path, headers=headers, json=body)
            return response.headers["x-request-id"], response.status_code

        return await asyncio.gather(*(one(i) for i in range(CONCURRENT)))


def test_concurrent_requests_all_get_their_rows(backend: tuple[str, Gateway]) -> None:
    _, gateway = backend
    user = f"burst-{uuid.uuid4().hex[:8]}"
    results = asyncio.run(burst(gateway, user))
    statuses = sorted({status for _, status in results})
    assert statuses == [200, 401, 502], results
    ids = [request_id for request_id, _ in results]
    assert len(set(ids)) == CONCURRENT
    rows = gateway.audit_rows(AuditLog.request_id.in_(ids))
    assert len(rows) == CONCURRENT
    by_id = {row.request_id: row for row in rows}
    for request_id, status in results:
        row = by_id[request_id]
        assert row.status == status
        assert row.user_id == (None if status == 401 else user)
    mine = gateway.audit_rows(AuditLog.user_id == user)
    assert len(mine) == sum(1 for _, status in results if status != 401)


def test_the_gateways_rows_form_a_verifiable_chain(
    backend: tuple[str, Gateway], tmp_path: Path
) -> None:
    """Concurrent requests of one tenant, through the gateway: one whole chain."""
    _, gateway = backend
    tenant = f"chain-{uuid.uuid4().hex[:8]}"
    token = gateway.token("alice", tenant=tenant)

    async def requests() -> list[int]:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
            body = {"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]}
            answers = await asyncio.gather(*(
                http.post("/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {token}"})
                for _ in range(20)
            ))  # fmt: skip
            return [a.status_code for a in answers]

    assert asyncio.run(requests()) == [200] * 20
    rows = gateway.audit_rows(AuditLog.tenant == tenant)
    assert sorted(r.seq or 0 for r in rows) == list(range(1, 21))
    done = run_cli(["audit", "verify", "--tenant", tenant], cli_env(gateway.database_url), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "verified 20 rows" in done.stdout
