"""Where audit batches are committed: one insert of many rows, in one transaction.

SQLite gets a dedicated thread with a plain ``sqlite3`` connection: the whole
batch (begin, insert, commit) is one hop off the event loop. Measured here,
that commits a single row in about 0.18 ms and a 250-row batch at 4 µs a row,
against 1.1 ms and 85 µs through SQLAlchemy's async engine, which crosses
threads for every statement. Other databases go through SQLAlchemy.

Either way a batch is chained (:mod:`llm_gateway.audit.chain`) inside its own
transaction: its tenants' chain heads are locked, each row gets its place and
hash, and the heads move on, all in the commit that stores the rows.

Rows replayed from the spool are inserted with ``fresh_only``: inside the same
transaction, after the chain heads are locked (which orders it after any commit
of the same tenant still in flight), request ids already stored are left out,
so a row is never stored twice.

A sink raises :class:`RejectedRows` when the database refuses the data itself
(retrying cannot help); any other exception is taken as transient.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.audit.chain import (
    GENESIS,
    LOCK_HEAD,
    MOVE_HEAD,
    Head,
    insert_linked,
    link,
    lock_heads,
    move_heads,
    tenants_of,
)
from llm_gateway.storage.db import Database
from llm_gateway.storage.models import AuditLog

Row = dict[str, Any]
COLUMNS = tuple(c.name for c in AuditLog.__table__.columns if c.name != "id")


class RejectedRows(Exception):
    """The database refused the rows' content (a constraint, a type, a size)."""


class AuditSink(Protocol):
    async def insert(self, rows: list[Row], *, fresh_only: bool = False) -> None: ...

    async def close(self) -> None: ...


class SqlAlchemySink:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def insert(self, rows: list[Row], *, fresh_only: bool = False) -> None:
        try:
            async with self.engine.begin() as conn:
                if not fresh_only:
                    await insert_linked(conn, rows)
                    return
                heads = await lock_heads(conn, tenants_of(rows))
                ids = [row["request_id"] for row in rows]
                found = select(AuditLog.request_id).where(AuditLog.request_id.in_(ids))
                rows = fresh(rows, set((await conn.scalars(found)).all()))
                if rows:
                    moved = link(rows, heads)
                    await conn.execute(insert(AuditLog), rows)
                    await move_heads(conn, moved)
        except DBAPIError as exc:
            if not _refused_data(exc):
                raise
            raise RejectedRows(str(exc.orig)) from exc

    async def close(self) -> None:
        pass


def fresh(rows: list[Row], stored: set[str]) -> list[Row]:
    """``rows`` without those already stored, one per request id (the last)."""
    unique = {row["request_id"]: row for row in rows if row["request_id"] not in stored}
    return list(unique.values())


def _refused_data(exc: DBAPIError) -> bool:
    """Whether the database refused the data itself rather than failed to take it.

    SQLSTATE classes 22 (data exception: a NUL byte, a value too long) and 23
    (integrity constraint) say so on PostgreSQL; without a SQLSTATE, SQLAlchemy's
    own classification decides.
    """
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(state, str) and state:
        return state[:2] in ("22", "23")
    return isinstance(exc, (DataError, IntegrityError))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # the format SQLAlchemy's SQLite DateTime reads back
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


class SqliteSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        self._connection: sqlite3.Connection | None = None
        placeholders = ", ".join("?" for _ in COLUMNS)
        self._sql = f"INSERT INTO audit_logs ({', '.join(COLUMNS)}) VALUES ({placeholders})"  # noqa: S608

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._connection = connection
        return self._connection

    def _write(self, rows: list[Row], fresh_only: bool) -> None:
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")  # the one writer: the heads read here stay true
        try:
            if fresh_only:
                rows = fresh(rows, self._stored(connection, [row["request_id"] for row in rows]))
            lock = LOCK_HEAD.format(t="?", g="?")
            heads = {}
            for tenant in tenants_of(rows):
                seq, hash_ = connection.execute(lock, (tenant, GENESIS)).fetchone()
                heads[tenant] = Head(int(seq), str(hash_))
            moved = link(rows, heads)
            values = [tuple(_sqlite_value(row.get(c)) for c in COLUMNS) for row in rows]
            connection.executemany(self._sql, values)
            connection.executemany(
                MOVE_HEAD.format(s="?", h="?", t="?"),
                [(h.seq, h.hash, t) for t, h in moved.items()],
            )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @staticmethod
    def _stored(connection: sqlite3.Connection, ids: list[str]) -> set[str]:
        stored: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            query = f"SELECT request_id FROM audit_logs WHERE request_id IN ({', '.join('?' * len(chunk))})"  # noqa: S608, E501
            stored.update(found for (found,) in connection.execute(query, chunk))
        return stored

    async def insert(self, rows: list[Row], *, fresh_only: bool = False) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._write, rows, fresh_only)
        except sqlite3.IntegrityError as exc:
            raise RejectedRows(str(exc)) from exc

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=True)


def sink_for(db: Database) -> AuditSink:
    """The fastest way to commit audit batches to this database."""
    if db.is_sqlite:
        return SqliteSink(Path(db.engine.url.database or ":memory:"))
    return SqlAlchemySink(db.engine)
