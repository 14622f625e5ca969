"""The audit spool: rows the database cannot take wait on disk, and are stored once when it can."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.audit.test_writer import _row

from llm_gateway.audit.records import STREAM_UNFINISHED
from llm_gateway.audit.sinks import AuditSink, sink_for
from llm_gateway.audit.spool import Spool
from llm_gateway.audit.writer import AuditUnavailable, AuditWriter
from llm_gateway.settings import async_driver_url
from llm_gateway.settings.storage import AuditMode
from llm_gateway.storage import Database
from llm_gateway.storage.models import AuditLog


@pytest.fixture
async def db(database_url: str):  # type: ignore[no-untyped-def]
    database = Database(async_driver_url(database_url))
    await database.upgrade()
    yield database
    await database.dispose()


async def _stored(db: Database) -> dict[str, AuditLog]:
    """Every stored row by request id; a request id stored twice fails the test."""
    async with db.sessions() as session:
        rows = list((await session.scalars(select(AuditLog).order_by(AuditLog.id))).all())
    ids = [row.request_id for row in rows]
    assert len(ids) == len(set(ids)), f"stored twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    return {row.request_id: row for row in rows}


class Outage:
    """A database that refuses connections until ``up`` is set, then is the real one."""

    def __init__(self, real: AuditSink) -> None:
        self.real = real
        self.up = asyncio.Event()
        self.refused = 0

    async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
        if not self.up.is_set():
            self.refused += 1
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        await self.real.insert(rows, fresh_only=fresh_only)

    async def close(self) -> None:
        await self.real.close()


def _fresh(sink: AuditSink) -> Any:
    async def insert(rows: list[dict[str, Any]]) -> None:
        await sink.insert(rows, fresh_only=True)

    return insert


def _spool(root: Path, **kw: Any) -> Spool:
    limit, fsync = kw.pop("max_bytes", 1 << 20), kw.pop("fsync", True)
    spool = Spool(root / "spool", max_bytes=limit, fsync=fsync, **kw)
    spool.open()
    return spool


def _die(spool: Spool) -> None:
    """As a SIGKILL leaves it: files on disk, the lock released, nothing cleaned up."""
    assert spool._lock is not None
    spool._lock.close()
    spool._thread.shutdown(wait=True)


async def _until(check: Any) -> None:
    while not await check():  # noqa: ASYNC110 (polling the database: no event to wait on)
        await asyncio.sleep(0.02)


# --- the spool on its own -------------------------------------------------------------


async def test_spooled_rows_are_replayed_once_and_the_segment_removed(
    tmp_path: Path, db: Database
) -> None:
    sink = sink_for(db)
    await sink.insert([_row("r-0")])  # stored already: a commit that landed after it timed out
    spool = _spool(tmp_path)
    try:
        await spool.append([_row(f"r-{i}") for i in range(5)])
        await spool.append([_row("r-5")])
        assert spool.rows == 6
        assert spool.size_bytes > 0
        assert await spool.drain(_fresh(sink)) is True
        assert sorted(await _stored(db)) == [f"r-{i}" for i in range(6)]
        assert spool.rows == 0
        assert not list(spool.directory.glob("rows-*.jsonl")) or all(
            p.stat().st_size == 0 for p in spool.directory.glob("rows-*.jsonl")
        )
    finally:
        await spool.close()
        await sink.close()
    assert not spool.directory.exists()  # nothing left to replay: the directory goes


async def test_a_spooled_row_keeps_its_values_and_joins_the_chain(
    tmp_path: Path, db: Database
) -> None:
    sink = sink_for(db)
    spool = _spool(tmp_path)
    row = _row("kept", tenant="acme", user_id="ünïcode", cost_usd=0.25, stream=True)
    try:
        await spool.append([dict(row)])
        await spool.drain(_fresh(sink))
    finally:
        await spool.close()
        await sink.close()
    stored = (await _stored(db))["kept"]
    assert (stored.tenant, stored.user_id, stored.cost_usd, stored.stream) == (
        "acme", "ünïcode", 0.25, True,
    )  # fmt: skip
    assert stored.timestamp == row["timestamp"]
    assert stored.seq == 1
    assert stored.chain_hash is not None


async def test_a_line_cut_short_by_a_crash_is_skipped_and_the_rest_replayed(
    tmp_path: Path, db: Database
) -> None:
    sink = sink_for(db)
    dead = _spool(tmp_path)
    await dead.append([_row("whole-1"), _row("whole-2")])
    segment = next(dead.directory.glob("rows-*.jsonl"))
    with segment.open("ab") as handle:
        handle.write(b'{"request_id": "torn", "sta')
    _die(dead)
    spool = _spool(tmp_path)
    try:
        assert await spool.drain(_fresh(sink)) is True
    finally:
        await spool.close()
        await sink.close()
    assert sorted(await _stored(db)) == ["whole-1", "whole-2"]
    assert not dead.directory.exists()


async def test_a_dead_process_spool_is_adopted_its_rows_winning_over_its_openings(
    tmp_path: Path, db: Database
) -> None:
    sink = sink_for(db)
    dead = _spool(tmp_path)
    finished = _row("finished-stream", stream=True, tokens_out=40)
    await dead.opened(_row("finished-stream", stream=True, error_code=STREAM_UNFINISHED))
    await dead.opened(_row("cut-stream", stream=True, error_code=STREAM_UNFINISHED))
    await dead.append([finished])
    dead.settled("finished-stream")
    _die(dead)
    alive = _spool(tmp_path)  # a live process's spool is never adopted
    await alive.opened(_row("running", stream=True, error_code=STREAM_UNFINISHED))
    spool = _spool(tmp_path)
    try:
        assert await spool.drain(_fresh(sink)) is True
    finally:
        await spool.close()
        await alive.close()
        await sink.close()
    stored = await _stored(db)
    assert sorted(stored) == ["cut-stream", "finished-stream"]
    assert stored["finished-stream"].error_code is None
    assert stored["finished-stream"].tokens_out == 40
    assert stored["cut-stream"].error_code == STREAM_UNFINISHED
    assert stored["cut-stream"].status == 200


async def test_a_spool_at_its_limit_refuses_rows(tmp_path: Path) -> None:
    from llm_gateway.audit.spool import SpoolFull, encode

    spool = _spool(tmp_path, max_bytes=4096)
    try:
        line = len(encode(_row("filler")))
        for _ in range(4096 // line):
            await spool.append([_row("filler")])
        with pytest.raises(SpoolFull, match="AUDIT_SPOOL_MAX_MB"):
            await spool.append([_row("filler")])
        assert spool.size_bytes <= 4096
    finally:
        _die(spool)


async def test_concurrent_stream_openings_share_a_write_and_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from llm_gateway.audit import spool as spool_module

    syncs: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    spool = _spool(tmp_path)
    monkeypatch.setattr(os, "fdatasync", counted)
    try:
        await asyncio.gather(*(
            spool.opened(_row(f"s-{i}", stream=True, error_code=STREAM_UNFINISHED))
            for i in range(16)
        ))  # fmt: skip
        assert 1 <= len(syncs) <= 2  # the first alone, the fifteen that waited together
        lines = (spool.directory / "open.jsonl").read_bytes().splitlines()
        written = sorted(str((spool_module.decode(line) or {}).get("request_id")) for line in lines)
        assert written == sorted(f"s-{i}" for i in range(16))
    finally:
        await spool.close()


async def test_openings_past_the_limit_are_refused_one_by_one_in_a_group(tmp_path: Path) -> None:
    from llm_gateway.audit.spool import SpoolFull, encode

    line = len(encode(_row("s-0", stream=True, error_code=STREAM_UNFINISHED)))
    spool = _spool(tmp_path, max_bytes=line * 3 + line // 2)  # room for three
    try:
        results = await asyncio.gather(
            *(spool.opened(_row(f"s-{i}", stream=True, error_code=STREAM_UNFINISHED))
              for i in range(5)),
            return_exceptions=True,
        )  # fmt: skip
        assert results[:3] == [None, None, None]
        assert all(isinstance(r, SpoolFull) for r in results[3:])
        assert spool.size_bytes <= line * 3 + line // 2
    finally:
        await spool.close()


# --- the writer with a spool -----------------------------------------------------------


async def test_while_the_database_is_down_requests_complete_and_the_rows_arrive_once_later(
    tmp_path: Path, db: Database
) -> None:
    sink = Outage(sink_for(db))
    writer = AuditWriter(sink, spool=_spool(tmp_path), spool_after_s=5)
    writer.start()
    try:
        await asyncio.gather(*(writer.write(_row(f"down-{i}")) for i in range(50)))
        assert sink.refused > 0
        assert writer.spooling == "connection refused"
        assert writer.status().summary().startswith("spooling: connection refused")
        assert await _stored(db) == {}
        assert writer.spool is not None
        assert writer.spool.rows == 50
        sink.up.set()
        await _until(lambda: _has(db, 50))
        await writer.write(_row("after"))  # straight to the database again
        await _until(lambda: _has(db, 51))
        assert writer.spooling is None
        assert writer.status().summary() == "ok"
    finally:
        await writer.close()
    assert set(await _stored(db)) == {*(f"down-{i}" for i in range(50)), "after"}


async def _has(db: Database, count: int) -> bool:
    return len(await _stored(db)) == count


async def test_a_commit_slower_than_the_spool_deadline_is_spooled_and_never_stored_twice(
    tmp_path: Path, db: Database
) -> None:
    real = sink_for(db)

    class Slow:
        """The first commit hangs until released, then lands after all."""

        def __init__(self) -> None:
            self.release = asyncio.Event()
            self.first = True

        async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
            if self.first:
                self.first = False
                await self.release.wait()
            await real.insert(rows, fresh_only=fresh_only)

        async def close(self) -> None:
            await real.close()

    sink = Slow()
    writer = AuditWriter(sink, spool=_spool(tmp_path), spool_after_s=0.05)
    writer.start()
    try:
        await writer.write(_row("slow"))  # durable in the spool once the commit overran
        assert writer.spooling == "no answer in time"
        sink.release.set()  # the commit lands; then the replay finds the row stored
        await _until(lambda: _no_longer_spooling(writer))
        await writer.write(_row("next"))
    finally:
        await writer.close()
    assert sorted(await _stored(db)) == ["next", "slow"]


async def _no_longer_spooling(writer: AuditWriter) -> bool:
    return writer.spooling is None


async def test_rows_left_in_the_spool_at_shutdown_are_stored_by_the_next_process(
    tmp_path: Path, db: Database
) -> None:
    writer = AuditWriter(Outage(sink_for(db)), spool=_spool(tmp_path))
    writer.start()
    await asyncio.gather(*(writer.write(_row(f"left-{i}")) for i in range(3)))
    await writer.close()  # the database never came back while it ran
    assert await _stored(db) == {}
    successor = AuditWriter(sink_for(db), spool=_spool(tmp_path))
    successor.start()
    try:
        await _until(lambda: _has(db, 3))
    finally:
        await successor.close()
    assert not list((tmp_path / "spool").iterdir())  # the adopted directory, replayed, is gone


async def test_a_stream_opening_is_on_disk_before_its_first_byte_and_settled_by_its_row(
    tmp_path: Path, db: Database
) -> None:
    spool = _spool(tmp_path)
    writer = AuditWriter(sink_for(db), spool=spool)
    writer.start()
    try:
        await writer.opened(_row("s-1", stream=True, error_code=STREAM_UNFINISHED))
        assert b"s-1" in (spool.directory / "open.jsonl").read_bytes()
        assert "s-1" in spool._openings
        await writer.write(_row("s-1", stream=True))
        assert "s-1" not in spool._openings  # no longer needed once its own row is in
    finally:
        await writer.close()
    assert (await _stored(db))["s-1"].error_code is None


async def test_in_fast_mode_a_request_does_not_wait_for_its_row(
    tmp_path: Path, db: Database
) -> None:
    held = asyncio.Event()
    real = sink_for(db)

    class Held:
        async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
            await held.wait()
            await real.insert(rows, fresh_only=fresh_only)

        async def close(self) -> None:
            await real.close()

    writer = AuditWriter(
        Held(), mode=AuditMode.FAST, spool=_spool(tmp_path, fsync=False), spool_after_s=60
    )
    writer.start()
    await writer.write(_row("fast-1"))  # returns with the commit still held
    assert writer.backlog == 1
    held.set()
    await writer.close()
    assert list(await _stored(db)) == ["fast-1"]


async def test_memory_is_bounded_past_the_queue_limit_requests_are_refused() -> None:
    class Stuck:
        async def insert(self, rows: list[dict[str, Any]], *, fresh_only: bool = False) -> None:
            await asyncio.Event().wait()

        async def close(self) -> None:
            pass

    writer = AuditWriter(Stuck(), mode=AuditMode.FAST, queue_max=3)
    writer.start()
    for i in range(4):  # one taken into the stuck batch, three queued
        await writer.write(_row(f"q-{i}"))
        await asyncio.sleep(0)
    with pytest.raises(AuditUnavailable):
        writer.admit()
    with pytest.raises(AuditUnavailable):
        await writer.write(_row("one-too-many"))
    assert writer.refused == 1
    assert writer._task is not None
    writer._task.cancel()
