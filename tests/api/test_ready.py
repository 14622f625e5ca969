"""Readiness covers the shared state store: a replica whose Redis is gone is not ready."""

from __future__ import annotations

import asyncio
import errno
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import Response
from starlette.requests import Request

from llm_gateway.api.health import ready
from llm_gateway.audit.sinks import AuditSink
from llm_gateway.audit.writer import AuditUnavailable
from llm_gateway.config import load_gateway_config
from llm_gateway.runtime import AppState
from llm_gateway.settings import load_settings
from tests.audit.test_writer import _row

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(
    tmp_path: Path, before: Callable[[AppState], None] | None = None, **env: str
) -> tuple[int, dict[str, Any]]:
    state = await _started(tmp_path, **env)
    try:
        if before is not None:
            before(state)
        return await _checks(state)
    finally:
        await state.stop()


async def test_an_in_process_store_is_always_ready(tmp_path: Path) -> None:
    status, checks = await _ready(tmp_path)
    assert (status, checks["state"], checks["database"]) == (200, True, True)


async def test_an_unreachable_redis_makes_the_gateway_not_ready(tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{_closed_port()}/0"
    status, checks = await _ready(tmp_path, STATE_BACKEND="redis", REDIS_URL=redis_url)
    assert (status, checks["state"], checks["database"]) == (503, False, True)


async def test_a_refused_policy_reload_shows_while_the_old_revision_serves(
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(CONFIG.parent / "policies", policies)
    revisions: list[str] = []

    def break_the_policy(state: AppState) -> None:
        revisions.append(state.policy.revision)
        rego = policies / "rego" / "authz.rego"
        rego.write_text(rego.read_text() + "\nallow if input.user.tier + 1 > 0\n")
        assert state.policy.reload() is False

    status, checks = await _ready(tmp_path, break_the_policy, POLICY_DIR=str(policies))
    assert status == 200  # the revision in force still decides
    assert checks["policy"] == revisions[0]
    reason = checks["policy_reload_error"]
    assert isinstance(reason, str)
    assert "trial input" in reason


class FullDisk:
    """An audit sink whose disk is full until ``room`` is set; each outcome is signalled."""

    def __init__(self, real: AuditSink) -> None:
        self.real = real
        self.room = False
        self.refused, self.stored = asyncio.Event(), asyncio.Event()

    async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
        if not self.room:
            self.refused.set()
            raise OSError(errno.ENOSPC, "No space left on device")
        await self.real.insert(rows, fresh_only=fresh_only)
        self.stored.set()

    async def close(self) -> None:
        await self.real.close()


async def _checks(state: AppState) -> tuple[int, dict[str, Any]]:
    app = SimpleNamespace(state=SimpleNamespace(gateway=state))
    response = Response()
    answer = await ready(Request({"type": "http", "app": app}), response)
    return response.status_code, answer.checks.model_dump()


async def _started(tmp_path: Path, **env: str) -> AppState:
    base = {"DATA_DIR": str(tmp_path), "CONFIG_DIR": str(CONFIG), "DLP_NER": "off"}
    settings = load_settings({**base, "DEMO_MODEL": "on", **env}, env_file=None)
    return await AppState.start(settings, load_gateway_config(settings.providers))


async def test_a_database_that_answers_but_cannot_store_rows_is_not_ready(
    tmp_path: Path,
) -> None:
    """Without a spool: a full or read-only disk, the ping succeeds, every commit fails."""
    state = await _started(tmp_path, AUDIT_SPOOL_MAX_MB="0")
    try:
        disk = FullDisk(state.audit.sink)
        state.audit.sink = disk
        state.audit.submit(_row("stuck"))
        await disk.refused.wait()
        status, found = await _checks(state)
        assert (status, found["database"], found["audit"]) == (503, True, "failing: disk full")
        assert found["spool"] is None
        assert state.audit.backlog == 1
        disk.room = True  # the queued row goes in at the writer's next retry
        await disk.stored.wait()
        assert state.audit.backlog == 0
        status, found = await _checks(state)
        assert (status, found["audit"]) == (200, "ok")
    finally:
        await state.stop()


async def test_rows_the_database_refuses_go_to_the_spool_and_the_gateway_stays_ready(
    tmp_path: Path,
) -> None:
    state = await _started(tmp_path, AUDIT_SPOOL_MAX_MB="1")
    try:
        disk = FullDisk(state.audit.sink)
        state.audit.sink = disk
        await state.audit.write(_row("spooled"))  # durable on disk, though not in the database
        status, found = await _checks(state)
        assert status == 200
        assert str(found["audit"]).startswith("spooling: disk full (0 MB of 1 MB)")
        assert found["spool"]["limit_bytes"] == 1 << 20
        assert found["spool"]["bytes"] > 0
        assert found["audit_mode"] == "strict"
    finally:
        await state.stop()


async def test_a_full_spool_makes_the_gateway_not_ready_and_refuses_requests(
    tmp_path: Path,
) -> None:
    state = await _started(tmp_path, AUDIT_SPOOL_MAX_MB="1")
    try:
        state.audit.sink = FullDisk(state.audit.sink)
        big = _row("big")
        big["policy_reasons"] = "x" * (1 << 20)  # more than the whole spool may hold
        with pytest.raises(AuditUnavailable):
            await state.audit.write(big)
        status, found = await _checks(state)
        assert status == 503
        assert found["audit"] == "failing: the audit spool is full (1 MB, AUDIT_SPOOL_MAX_MB)"
        with pytest.raises(AuditUnavailable):
            state.audit.admit()  # a new request is refused before anything else runs
    finally:
        await state.stop()
