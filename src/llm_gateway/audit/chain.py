"""The audit trail's hash chain: each tenant's rows linked, so that an edit shows.

Every row carries ``seq`` (its place in its tenant's chain, from 1),
``chain_prev`` (the previous row's hash; :data:`GENESIS` for the first) and
``chain_hash``: the SHA-256 of the row's canonical serialisation, sorted-key
JSON of its stored values (``chain_prev`` and ``seq`` included, ``id`` and
``chain_hash`` not, NULLs left out so that a column added later does not change
old rows' hashes). Values are normalised by column type, so a row hashes the
same as it was written and as any backend reads it back. The form is part of
the stored data: changing it (or dropping a column) needs a migration that
re-chains, after a verify.

The chain's head (last ``seq`` and hash of each tenant) lives in
``audit_chain_heads``; a writer locks a tenant's head row inside the commit
that adds its rows (an upsert, which takes the row lock on PostgreSQL; SQLite
has one writer at a time), so several gateway processes extend one chain,
never fork it. Tenants' heads are locked in sorted order: no deadlock.

A prune removes a prefix of a chain and records, in ``audit_prunes``, the last
removed row's ``seq`` and hash: the chain's new anchor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Boolean, Float, Integer, String, Text, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.storage.models import AuditLog, UTCDateTime

GENESIS = "0" * 64
#: The key of the chain of rows without a tenant (``audit_logs.tenant`` NULL).
NO_TENANT = ""

_UNHASHED = {"id", "chain_hash"}


def _kinds() -> dict[str, str]:
    kinds: dict[str, str] = {}
    for column in AuditLog.__table__.columns:
        if column.name in _UNHASHED:
            continue
        kind = column.type
        if isinstance(kind, Boolean):
            kinds[column.name] = "bool"
        elif isinstance(kind, Integer):  # BigInteger too
            kinds[column.name] = "int"
        elif isinstance(kind, Float):
            kinds[column.name] = "float"
        elif isinstance(kind, UTCDateTime):
            kinds[column.name] = "time"
        elif isinstance(kind, (String, Text)):
            kinds[column.name] = "str"
        else:  # pragma: no cover - a new column type must be given a canonical form here
            raise TypeError(f"audit_logs.{column.name}: no canonical form for {kind!r}")
    return kinds


HASHED = _kinds()


def _time(value: Any) -> str:
    if isinstance(value, str):  # SQLite's text form, read without SQLAlchemy
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).isoformat(timespec="microseconds"))


_CANONICAL: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "int": int,
    "float": float,
    "time": _time,
    "str": str,
}
_PLAN = tuple((name, _CANONICAL[kind]) for name, kind in HASHED.items())


def canonical(row: Mapping[str, Any]) -> bytes:
    """The row's stored values as sorted-key JSON (NULLs omitted), each in its column's type."""
    values = {}
    for name, form in _PLAN:
        value = row.get(name)
        if value is not None:
            values[name] = form(value)
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def chain_key(tenant: str | None) -> str:
    return NO_TENANT if tenant is None else tenant


@dataclass(frozen=True)
class Head:
    """Where a chain stands: its last row's ``seq`` and hash (0 and GENESIS: empty)."""

    seq: int = 0
    hash: str = GENESIS


def link(rows: Iterable[dict[str, Any]], heads: dict[str, Head]) -> dict[str, Head]:
    """Give each row, in order, its ``seq``, ``chain_prev`` and ``chain_hash``.

    ``heads`` holds each tenant's head as locked in this commit; the new heads are
    returned (only the tenants that changed). The rows are changed in place.
    """
    moved: dict[str, Head] = {}
    for row in rows:
        key = chain_key(row.get("tenant"))
        head = moved.get(key) or heads.get(key) or Head()
        row["seq"] = head.seq + 1
        row["chain_prev"] = head.hash
        row["chain_hash"] = row_hash(row)
        moved[key] = Head(row["seq"], row["chain_hash"])
    return moved


#: Locks a tenant's head row (creating it for a new chain) and reads it, in one statement.
LOCK_HEAD = (
    "INSERT INTO audit_chain_heads (tenant, seq, hash) VALUES ({t}, 0, {g}) "
    "ON CONFLICT (tenant) DO UPDATE SET tenant = excluded.tenant RETURNING seq, hash"
)
MOVE_HEAD = "UPDATE audit_chain_heads SET seq = {s}, hash = {h} WHERE tenant = {t}"


def tenants_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The chains these rows extend, in the order their heads are locked."""
    return sorted({chain_key(row.get("tenant")) for row in rows})


async def lock_heads(conn: AsyncConnection, tenants: Iterable[str]) -> dict[str, Head]:
    statement = text(LOCK_HEAD.format(t=":t", g=":g"))
    heads: dict[str, Head] = {}
    for tenant in sorted(tenants):
        seq, hash_ = (await conn.execute(statement, {"t": tenant, "g": GENESIS})).one()
        heads[tenant] = Head(int(seq), str(hash_))
    return heads


async def move_heads(conn: AsyncConnection, moved: Mapping[str, Head]) -> None:
    if moved:
        await conn.execute(
            text(MOVE_HEAD.format(s=":s", h=":h", t=":t")),
            [{"s": h.seq, "h": h.hash, "t": t} for t, h in moved.items()],
        )


async def insert_linked(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Chain ``rows`` onto their tenants' heads and insert them, inside ``conn``'s transaction."""
    heads = await lock_heads(conn, tenants_of(rows))
    moved = link(rows, heads)
    await conn.execute(insert(AuditLog), rows)
    await move_heads(conn, moved)
