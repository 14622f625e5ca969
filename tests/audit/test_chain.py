"""The audit trail's hash chain on SQLite and PostgreSQL: written in the writer's commit,
checked by ``llm-gateway audit verify`` (which names the first row edited, deleted or
inserted behind the gateway's back), kept whole by a prune and by concurrent writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text
from tests.audit.test_writer import _row
from tests.e2e.test_audit_postgres import cli_env
from tests.harness import run_cli

from llm_gateway.audit.chain import GENESIS, row_hash
from llm_gateway.audit.integrity import PruneRefused, prune, verify
from llm_gateway.audit.sinks import sink_for
from llm_gateway.audit.writer import AuditWriter
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from llm_gateway.storage.db import alembic_config
from llm_gateway.storage.models import AuditChainHead, AuditLog, AuditPrune

OLD = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str):  # type: ignore[no-untyped-def]
    database = Database(async_driver_url(database_url))
    await database.upgrade()
    yield database
    await database.dispose()


async def write(db: Database, rows: list[dict[str, Any]]) -> None:
    writer = AuditWriter(sink_for(db))
    writer.start()
    try:
        await asyncio.gather(*(writer.write(r) for r in rows))
    finally:
        await writer.close()


def rows_of(tenant: str | None, n: int, prefix: str, **extra: Any) -> list[dict[str, Any]]:
    return [_row(f"{prefix}{i}", tenant=tenant, cost_usd=i / 1000, **extra) for i in range(n)]


async def stored(db: Database) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        found = await conn.execute(select(AuditLog.__table__).order_by(AuditLog.id))
        return [dict(r) for r in found.mappings()]


async def sql(db: Database, statement: str, **params: Any) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(statement), params)


async def a_mixed_trail(db: Database) -> None:
    await write(db, rows_of("acme", 4, "a"))
    await write(db, rows_of("globex", 2, "g") + rows_of(None, 1, "n") + rows_of("acme", 2, "b"))


async def audit_cli(db: Database, *args: str, cwd: Path) -> Any:
    """``llm-gateway audit ...`` (in a thread: the command runs its own event loop)."""
    url = db.url.replace("+aiosqlite", "").replace("+asyncpg", "")
    return await asyncio.to_thread(run_cli, ["audit", *args], cli_env(url), cwd)


async def test_each_row_is_chained_to_its_tenants_previous_row(db: Database) -> None:
    await a_mixed_trail(db)
    rows = await stored(db)
    assert len(rows) == 9
    by_tenant: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        by_tenant.setdefault(row["tenant"], []).append(row)
    assert {t: len(r) for t, r in by_tenant.items()} == {"acme": 6, "globex": 2, None: 1}
    for chain in by_tenant.values():
        assert [r["seq"] for r in chain] == list(range(1, len(chain) + 1))
        previous = GENESIS
        for row in chain:
            assert row["chain_prev"] == previous
            assert row["chain_hash"] == row_hash(row)  # as read back: the stored values
            assert len(row["chain_hash"]) == 64
            previous = row["chain_hash"]
    async with db.engine.connect() as conn:
        heads = {h.tenant: (h.seq, h.hash) for h in (await conn.execute(select(AuditChainHead)))}
    assert heads == {
        t or "": (c[-1]["seq"], c[-1]["chain_hash"]) for t, c in by_tenant.items()
    }  # fmt: skip
    done = await verify(db)
    assert (done.rows, done.tenants, done.broken) == (9, 3, None)


async def test_verify_passes_on_an_untouched_chain(db: Database, tmp_path: Path) -> None:
    await a_mixed_trail(db)
    done = await audit_cli(db, "verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "verified 9 rows" in done.stdout
    tenant = await audit_cli(db, "verify", "--tenant", "acme", cwd=tmp_path)
    assert "verified 6 rows" in tenant.stdout
    now = datetime.now(UTC)
    ranged = await audit_cli(db, "verify", "--from", (now - timedelta(hours=1)).isoformat(),
                       "--to", (now + timedelta(hours=1)).isoformat(), cwd=tmp_path)  # fmt: skip
    assert ranged.returncode == 0, ranged.stderr
    assert "verified 9 rows" in ranged.stdout


async def test_verify_names_an_edited_row(db: Database, tmp_path: Path) -> None:
    await a_mixed_trail(db)
    await sql(db, "UPDATE audit_logs SET cost_usd = 0 WHERE request_id = 'a2'")
    target = next(r for r in await stored(db) if r["request_id"] == "a2")
    done = await verify(db)
    assert done.broken is not None
    assert (done.broken.tenant, done.broken.row_id) == ("acme", target["id"])
    assert "edited" in done.broken.message
    answer = await audit_cli(db, "verify", cwd=tmp_path)
    assert answer.returncode == 1
    assert f"row id {target['id']} (request a2) was edited" in answer.stderr
    # the other tenants' chains are whole
    assert (await verify(db, "globex")).broken is None


async def test_verify_names_a_deleted_row(db: Database, tmp_path: Path) -> None:
    await a_mixed_trail(db)
    await sql(db, "DELETE FROM audit_logs WHERE request_id = 'a1'")
    after = next(r for r in await stored(db) if r["request_id"] == "a2")
    answer = await audit_cli(db, "verify", "--tenant", "acme", cwd=tmp_path)
    assert answer.returncode == 1
    assert f"seq 2, before row id {after['id']} (request a2), were deleted" in answer.stderr


async def test_verify_sees_the_last_rows_deleted(db: Database) -> None:
    await a_mixed_trail(db)
    await sql(db, "DELETE FROM audit_logs WHERE request_id = 'b1'")
    broken = (await verify(db, "acme")).broken
    assert broken is not None
    assert "head is at seq 6 but its last row is at seq 5" in broken.message
    assert "after row id" in broken.message
    assert "(request b0)" in broken.message


async def test_verify_names_a_row_inserted_directly(db: Database, tmp_path: Path) -> None:
    await a_mixed_trail(db)
    await sql(
        db,
        "INSERT INTO audit_logs (request_id, timestamp, tenant, endpoint, status, latency_ms, "
        "stream, tokens_in, tokens_out, tokens_used, tokens_estimated, cost_usd) "
        "VALUES ('forged', :ts, 'acme', 'openai', 200, 1.0, false, 0, 0, 0, false, 0)",
        ts=datetime.now(UTC),
    )
    forged = next(r for r in await stored(db) if r["request_id"] == "forged")
    answer = await audit_cli(db, "verify", cwd=tmp_path)
    assert answer.returncode == 1
    assert f"row id {forged['id']} (request forged) has no place in the chain" in answer.stderr


async def test_verify_names_a_row_inserted_into_the_chain(db: Database) -> None:
    """A forger who copies a row into a place in the chain, with its hash, is seen too."""
    await a_mixed_trail(db)
    await sql(
        db,
        "INSERT INTO audit_logs (request_id, timestamp, tenant, endpoint, status, latency_ms, "
        "stream, tokens_in, tokens_out, tokens_used, tokens_estimated, cost_usd, seq, "
        "chain_prev, chain_hash) SELECT 'copy', timestamp, tenant, endpoint, status, "
        "latency_ms, stream, tokens_in, tokens_out, tokens_used, tokens_estimated, cost_usd, "
        "seq, chain_prev, chain_hash FROM audit_logs WHERE request_id = 'a1'",
    )
    broken = (await verify(db)).broken
    assert broken is not None
    assert broken.request_id == "copy"
    assert "inserted out of order" in broken.message


async def test_verify_names_a_row_inserted_past_the_head(db: Database) -> None:
    await a_mixed_trail(db)
    await sql(
        db,
        "INSERT INTO audit_logs (request_id, timestamp, tenant, endpoint, status, latency_ms, "
        "stream, tokens_in, tokens_out, tokens_used, tokens_estimated, cost_usd, seq, "
        "chain_prev, chain_hash) SELECT 'ahead', timestamp, tenant, endpoint, status, "
        "latency_ms, stream, tokens_in, tokens_out, tokens_used, tokens_estimated, cost_usd, "
        "seq + 1, chain_hash, chain_hash FROM audit_logs WHERE request_id = 'b1'",
    )
    broken = (await verify(db)).broken
    assert broken is not None
    assert broken.request_id == "ahead"
    assert "past the chain's head" in broken.message


async def test_verify_while_the_gateway_writes_is_no_false_alarm(db: Database) -> None:
    """Rows committed during a check are after the head it read: not walked, not missed."""
    writer = AuditWriter(sink_for(db), batch_max=3)
    writer.start()
    stop = asyncio.Event()

    async def keep_writing() -> int:
        n = 0
        while not stop.is_set():
            await asyncio.gather(
                *(writer.write(_row(f"w{n}-{i}", tenant="acme")) for i in range(5))
            )
            n += 1
        return n

    try:
        await writer.write(_row("first", tenant="acme"))
        writing = asyncio.create_task(keep_writing())
        checks = [await verify(db, "acme") for _ in range(15)]
        stop.set()
        assert await writing > 0
    finally:
        await writer.close()
    assert [c.broken for c in checks] == [None] * 15
    assert (await verify(db)).broken is None


async def test_a_prune_keeps_the_chain_verifiable_and_is_audited(
    db: Database, tmp_path: Path
) -> None:
    await write(db, [_row(f"old{i}", tenant="acme", timestamp=OLD + timedelta(days=i))
                     for i in range(5)])  # fmt: skip
    await write(db, rows_of("acme", 3, "new") + rows_of("globex", 2, "g", timestamp=OLD))
    # a late row for an old request: chained after newer ones, so the prune stops before it
    await write(db, [_row("late", tenant="acme", timestamp=OLD)])
    done = await audit_cli(db, "prune", "--tenant", "acme", "--before", "2026-06-01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pruned 5 rows of tenant acme" in done.stdout
    left = await stored(db)
    assert {r["request_id"] for r in left if r["tenant"] == "acme"} >= {"new0", "late"}
    assert not [r for r in left if r["request_id"].startswith("old")]
    assert len([r for r in left if r["tenant"] == "globex"]) == 2  # other tenants untouched
    (pruned,) = [r for r in left if r["endpoint"] == "audit.prune"]
    assert (pruned["tenant"], pruned["status"], pruned["seq"]) == ("acme", 200, 10)
    assert pruned["user_id"].startswith("cli:")
    async with db.engine.connect() as conn:
        (record,) = (await conn.execute(select(AuditPrune.__table__))).mappings()
    assert (record["rows"], record["first_seq"], record["last_seq"]) == (5, 1, 5)
    assert (record["last_request_id"], record["request_id"]) == ("old4", pruned["request_id"])
    verified = await audit_cli(db, "verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "verified 7 rows" in verified.stdout  # 3 new, late, the prune's; globex's 2
    await write(db, rows_of("acme", 2, "after"))
    assert (await verify(db)).broken is None
    again = await prune(db, "acme", datetime(2026, 6, 1, tzinfo=UTC), "test")
    assert again.rows == 0  # 'new0' is newer than the cut: nothing older is before it
    assert (await verify(db)).broken is None


async def test_a_prune_refuses_a_broken_prefix(db: Database) -> None:
    await write(db, [_row(f"old{i}", tenant="acme", timestamp=OLD) for i in range(3)])
    await sql(db, "UPDATE audit_logs SET status = 500 WHERE request_id = 'old1'")
    with pytest.raises(PruneRefused, match=r"request old1\) was edited"):
        await prune(db, "acme", datetime(2026, 6, 1, tzinfo=UTC), "test")
    assert len(await stored(db)) == 3  # the evidence is kept


async def test_rows_written_before_the_chain_are_chained_by_the_migration(
    database_url: str,
) -> None:
    db = Database(async_driver_url(database_url))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0010"))
        for i, tenant in enumerate(["acme", "acme", None, "globex", "acme"]):
            await sql(
                db,
                "INSERT INTO audit_logs (request_id, timestamp, tenant, endpoint, status, "
                "latency_ms, stream, tokens_in, tokens_out, tokens_used, tokens_estimated, "
                "cost_usd) VALUES (:r, :ts, :t, 'openai', 200, 1.5, true, 1, 2, 3, false, 0.25)",
                r=f"pre{i}", ts=datetime.now(UTC), t=tenant,
            )  # fmt: skip
        await db.upgrade()
        done = await verify(db)
        assert (done.rows, done.broken) == (5, None)
        await write(db, rows_of("acme", 2, "post"))
        assert [r["seq"] for r in await stored(db) if r["tenant"] == "acme"] == [1, 2, 3, 4, 5]
        assert (await verify(db)).broken is None
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_concurrent_writers_on_postgresql_keep_one_chain(postgres_url: str) -> None:
    """Two gateway processes' writers (two engines) extend one tenant's chain at once."""
    url = async_driver_url(postgres_url)
    first, second = Database(url), Database(url)
    await first.upgrade()
    writers = [
        AuditWriter(sink_for(first), batch_max=7),
        AuditWriter(sink_for(second), batch_max=5),
    ]
    for w in writers:
        w.start()
    try:
        for burst in range(6):  # interleaved batches, each writer with several in flight
            await asyncio.gather(*(
                writers[i % 2].write(_row(f"c{burst}-{i}", tenant="acme" if i % 3 else "globex"))
                for i in range(40)
            ))  # fmt: skip
        assert writers[0].batches > 1
        assert writers[1].batches > 1
    finally:
        for w in writers:
            await w.close()
    try:
        rows = await stored(first)
        assert len(rows) == 240
        for tenant in ("acme", "globex"):
            seqs = sorted(r["seq"] for r in rows if r["tenant"] == tenant)
            assert seqs == list(range(1, len(seqs) + 1))  # no fork: no seq twice, no gap
        done = await verify(first)
        assert (done.rows, done.broken) == (240, None)
    finally:
        await first.dispose()
        await second.dispose()
