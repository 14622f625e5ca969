"""Readiness covers the shared state store: a replica whose Redis is gone is not ready."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from fastapi import Response
from starlette.requests import Request

from llm_gateway.api.health import ready
from llm_gateway.config import load_gateway_config
from llm_gateway.runtime import AppState
from llm_gateway.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(
    tmp_path: Path, before: Callable[[AppState], None] | None = None, **env: str
) -> tuple[int, dict[str, object]]:
    base = {"DATA_DIR": str(tmp_path), "CONFIG_DIR": str(CONFIG), "DLP_NER": "off"}
    settings = load_settings({**base, "DEMO_MODEL": "on", **env}, env_file=None)
    state = await AppState.start(settings, load_gateway_config(settings.providers))
    try:
        if before is not None:
            before(state)
        app = SimpleNamespace(state=SimpleNamespace(gateway=state))
        response = Response()
        answer = await ready(Request({"type": "http", "app": app}), response)
    finally:
        await state.stop()
    return response.status_code, answer.checks.model_dump()


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


async def test_a_database_that_answers_but_cannot_store_rows_is_not_ready(
    tmp_path: Path,
) -> None:
    """A full or read-only disk: the ping succeeds, every commit fails."""
    import asyncio
    import errno

    from tests.audit.test_writer import _row

    base = {"DATA_DIR": str(tmp_path), "CONFIG_DIR": str(CONFIG), "DLP_NER": "off"}
    settings = load_settings({**base, "DEMO_MODEL": "on"}, env_file=None)
    state = await AppState.start(settings, load_gateway_config(settings.providers))
    real = state.audit.sink

    class Disk:
        """Full until ``room`` is set; each insert's outcome is signalled."""

        def __init__(self) -> None:
            self.room = False
            self.refused, self.stored = asyncio.Event(), asyncio.Event()

        async def insert(self, rows: list[dict[str, object]]) -> None:
            if not self.room:
                self.refused.set()
                raise OSError(errno.ENOSPC, "No space left on device")
            await real.insert(rows)
            self.stored.set()

        async def close(self) -> None:
            await real.close()

    async def checks() -> tuple[int, dict[str, object]]:
        app = SimpleNamespace(state=SimpleNamespace(gateway=state))
        response = Response()
        answer = await ready(Request({"type": "http", "app": app}), response)
        return response.status_code, answer.checks.model_dump()

    try:
        disk = Disk()
        state.audit.sink = disk
        state.audit.submit(_row("stuck"))
        await disk.refused.wait()
        status, found = await checks()
        assert (status, found["database"], found["audit"]) == (503, True, "failing: disk full")
        assert state.audit.backlog == 1
        disk.room = True  # the queued row goes in at the writer's next retry
        await disk.stored.wait()
        assert state.audit.backlog == 0
        status, found = await checks()
        assert (status, found["audit"]) == (200, "ok")
    finally:
        await state.stop()
