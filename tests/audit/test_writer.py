from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from llm_gateway.audit.sinks import COLUMNS, sink_for
from llm_gateway.audit.writer import AuditUnavailable, AuditWriter
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from llm_gateway.storage.models import AuditLog


def _row(request_id: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)  # columns added later default to NULL
    row |= {
        "request_id": request_id, "timestamp": datetime.now(UTC), "user_id": "alice",
        "team": None, "tenant": None, "key_id": None, "auth_method": "jwt", "endpoint": "openai",
        "model_requested": "m", "model": "m", "provider": "openai", "upstream_model": "m",
        "stream": False, "status": 200, "error_code": None, "latency_ms": 1.0, "tokens_in": 1,
        "tokens_out": 2, "tokens_used": 3, "tokens_estimated": False, "cost_usd": 0.0,
        "prompt_sha256": None, "prompt_chars": None, "response_sha256": None,
        "response_chars": None,
    }  # fmt: skip
    row.update(extra)
    return row


@pytest.fixture
async def db(database_url: str):  # type: ignore[no-untyped-def]
    database = Database(async_driver_url(database_url))
    await database.upgrade()
    yield database
    await database.dispose()


async def _count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(AuditLog))).scalar_one())


async def test_concurrent_rows_are_grouped_into_few_commits(db: Database) -> None:
    writer = AuditWriter(sink_for(db))
    writer.start()
    try:
        await asyncio.gather(*(writer.write(_row(f"r{i}")) for i in range(200)))
        assert await _count(db) == 200  # every waiter returned only after its commit
        assert writer.batches < 20, f"{writer.batches} commits for 200 concurrent rows"
    finally:
        await writer.close()


async def test_close_flushes_rows_that_nobody_waited_for(db: Database) -> None:
    writer = AuditWriter(sink_for(db))
    writer.start()
    for i in range(10):
        writer.submit(_row(f"late{i}"))
    await writer.close()
    assert await _count(db) == 10


async def test_a_poison_row_fails_alone_and_the_others_are_kept(db: Database) -> None:
    writer = AuditWriter(sink_for(db))
    writer.start()
    try:
        await writer.write(_row("dup"))
        results = await asyncio.gather(
            writer.write(_row("ok1")), writer.write(_row("dup")), writer.write(_row("ok2")),
            return_exceptions=True,
        )  # fmt: skip
        assert results[0] is None
        assert results[2] is None
        assert isinstance(results[1], AuditUnavailable)
        assert await _count(db) == 3
    finally:
        await writer.close()


async def test_waiters_fail_closed_when_the_database_is_gone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/never-migrated.db")  # no audit_logs table
    writer = AuditWriter(sink_for(db), wait_timeout_s=0.3)
    writer.start()
    try:
        with pytest.raises(AuditUnavailable):
            await writer.write(_row("x"))
    finally:
        await writer.close(timeout_s=0.2)
        await db.dispose()


async def test_a_retry_warning_says_why(caplog: pytest.LogCaptureFixture) -> None:
    import errno

    class FullOnce:
        def __init__(self) -> None:
            self.calls = 0

        async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
            self.calls += 1
            if self.calls == 1:
                raise OSError(errno.ENOSPC, "No space left on device")

        async def close(self) -> None:
            pass

    writer = AuditWriter(FullOnce())
    writer.start()
    await writer.write(_row("r-1"))
    await writer.close()
    (warning,) = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert "(disk full)" in warning


async def test_a_row_whose_wait_timed_out_is_stored_as_the_refusal_it_was(db: Database) -> None:
    class Down:
        """The database is down until told otherwise; then rows go to the real one."""

        def __init__(self) -> None:
            self.up = asyncio.Event()
            self.real = sink_for(db)

        async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
            if not self.up.is_set():
                raise ConnectionRefusedError("connection refused")
            await self.real.insert(rows)

        async def close(self) -> None:
            await self.real.close()

    sink = Down()
    writer = AuditWriter(sink, wait_timeout_s=0.2)
    writer.start()
    with pytest.raises(AuditUnavailable):
        await writer.write(_row("refused-1"))
    sink.up.set()
    await writer.close(timeout_s=10)
    async with db.sessions() as session:
        row = (await session.scalars(select(AuditLog))).one()
    assert (row.request_id, row.status, row.error_code) == ("refused-1", 503, "audit_unavailable")
