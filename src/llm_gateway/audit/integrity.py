"""Checking the hash chain, and the one way rows leave the audit trail: a retention prune.

:func:`verify` walks each tenant's chain in ``seq`` order from its anchor (the
genesis, or the last prune's) and stops at the first row that does not fit:
one whose hash does not match its content (edited), a gap in ``seq`` (deleted),
a repeated ``seq``, a row that does not link to its predecessor or one with no
place in the chain at all (inserted). Without ``end``, it reads the chain's head
first and walks up to it (rows committed meanwhile come after it): the last
row must be the head (else rows were deleted at the end), and no row may lie
past the head as read again afterwards (else it was inserted directly).
PostgreSQL checks in one snapshot (REPEATABLE READ).

:func:`prune` removes the prefix of a tenant's chain older than a cut (the
longest prefix whose rows are all older: rows are chained in commit order, not
in time order), after checking it, records in ``audit_prunes`` the last
removed row's ``seq`` and hash (the chain's new anchor) and writes the prune's
own audit row (``endpoint = "audit.prune"``), all in one transaction.

Without a secret, the chain shows tampering by anyone who does not recompute
it; someone who can rewrite every later row and the head can. Exported heads
(or the audit trail shipped elsewhere) close that gap.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.audit.chain import NO_TENANT, Head, insert_linked, lock_heads, row_hash
from llm_gateway.audit.sinks import COLUMNS
from llm_gateway.storage.db import Database
from llm_gateway.storage.models import AuditChainHead, AuditLog, AuditPrune

LOG = AuditLog.__table__


@dataclass(frozen=True)
class Break:
    """Where a chain stops being whole."""

    tenant: str
    row_id: int | None
    request_id: str | None
    message: str

    def __str__(self) -> str:
        return f"tenant {self.tenant or '(none)'}: {self.message}"


@dataclass
class Verification:
    rows: int = 0
    tenants: int = 0
    broken: Break | None = None  # the first one found


def _of_tenant(key: str) -> ColumnElement[bool]:
    return LOG.c.tenant.is_(None) if key == NO_TENANT else LOG.c.tenant == key


def _named(row: Mapping[str, Any]) -> str:
    return f"row id {row['id']} (request {row['request_id']})"


async def anchor(conn: AsyncConnection, key: str) -> Head:
    """Where the tenant's chain starts: after its last prune, or at the genesis."""
    found = (
        await conn.execute(
            select(AuditPrune.last_seq, AuditPrune.last_hash)
            .where(AuditPrune.tenant == key)
            .order_by(AuditPrune.id.desc())
            .limit(1)
        )
    ).first()
    return Head(int(found[0]), str(found[1])) if found else Head()


async def _walk(
    conn: AsyncConnection, key: str, start: Head, last_seq: int | None
) -> tuple[int, Head, Break | None, Mapping[str, Any] | None]:
    """Check the rows after ``start`` (up to ``last_seq``): how many, where it ends, the break."""
    query = (
        select(LOG)
        .where(_of_tenant(key), LOG.c.seq.is_not(None), LOG.c.seq > start.seq)
        .order_by(LOG.c.seq, LOG.c.id)
    )
    if last_seq is not None:
        query = query.where(LOG.c.seq <= last_seq)
    head, count, last = start, 0, None
    result = await conn.stream(query.execution_options(yield_per=1000))
    async for found in result.mappings():
        row: dict[str, Any] = dict(found)
        expected = head.seq + 1
        if row["seq"] > expected:
            gap = f"seq {expected}" if row["seq"] == expected + 1 else (
                f"seq {expected} to {row['seq'] - 1}"
            )  # fmt: skip
            message = f"the row(s) at {gap}, before {_named(row)}, were deleted"
        elif row["seq"] < expected:
            message = f"{_named(row)} repeats seq {row['seq']}: it was inserted out of order"
        elif row_hash(row) != row["chain_hash"]:
            message = f"{_named(row)} was edited: its content does not match its hash"
        elif row["chain_prev"] != head.hash:
            message = f"{_named(row)} does not link to the row before it: inserted out of order"
        else:
            head, count, last = Head(row["seq"], row["chain_hash"]), count + 1, row
            continue
        await result.close()
        return count, head, Break(key, row["id"], row["request_id"], message), last
    return count, head, None, last


@dataclass(frozen=True)
class _Span:
    """The part of a chain to walk: after ``begin``, up to ``last_seq`` (None: to the end)."""

    begin: Head
    last_seq: int | None


async def _span(
    conn: AsyncConnection, key: str, begin: Head, start: datetime | None, end: datetime | None
) -> _Span | Break | None:
    """The rows of ``[start, end)``, from the row before the first (None: no rows there)."""
    in_range = [_of_tenant(key), LOG.c.seq.is_not(None)]
    if start is not None:
        in_range.append(LOG.c.timestamp >= start)
    if end is not None:
        in_range.append(LOG.c.timestamp < end)
    low, high = (
        await conn.execute(select(func.min(LOG.c.seq), func.max(LOG.c.seq)).where(*in_range))
    ).one()
    if low is None:
        return None
    last_seq = int(high) if end is not None else None
    if low - 1 <= begin.seq:
        return _Span(begin, last_seq)
    before = (
        await conn.execute(select(LOG.c.chain_hash).where(_of_tenant(key), LOG.c.seq == low - 1))
    ).first()
    if before is None:
        return Break(key, None, None, f"the row at seq {low - 1} was deleted")
    return _Span(Head(low - 1, str(before[0])), last_seq)


async def _verify_tenant(
    conn: AsyncConnection, key: str, start: datetime | None, end: datetime | None
) -> tuple[int, Break | None]:
    # The head first: the rows up to it are committed (with it), later ones are not walked,
    # so a gateway writing meanwhile is no false alarm.
    recorded = await _stored_head(conn, key) if end is None else None
    begin = await anchor(conn, key)
    whole = start is None and end is None
    span = _Span(begin, None) if whole else await _span(conn, key, begin, start, end)
    if span is None:
        return 0, None
    if isinstance(span, Break):
        return 0, span
    last_seq = recorded.seq if recorded is not None else span.last_seq
    count, head, broken, last = await _walk(conn, key, span.begin, last_seq)
    if broken is not None:
        return count, broken
    outside = select(LOG.c.id, LOG.c.request_id).where(_of_tenant(key), LOG.c.seq.is_(None))
    if start is not None:
        outside = outside.where(LOG.c.timestamp >= start)
    if end is not None:
        outside = outside.where(LOG.c.timestamp < end)
    stray = (await conn.execute(outside.order_by(LOG.c.id).limit(1))).mappings().first()
    if stray is not None:
        return count, _stray(key, dict(stray))
    if recorded is None:
        return count, None
    if recorded != head:
        after = f"after {_named(last)}" if last is not None else "from its start"
        message = (
            f"the chain's head is at seq {recorded.seq} but its last row is at seq "
            f"{head.seq}: the rows {after} were deleted"
        )
        return count, Break(key, None, None, message)
    return count, await _past_the_head(conn, key, recorded)


async def _past_the_head(conn: AsyncConnection, key: str, recorded: Head) -> Break | None:
    """A row beyond the head: written since (fine), or put there behind the writers' back."""
    newest = (
        await conn.execute(
            select(LOG.c.id, LOG.c.request_id, LOG.c.seq)
            .where(_of_tenant(key), LOG.c.seq > recorded.seq)
            .order_by(LOG.c.seq.desc())
            .limit(1)
        )
    ).mappings().first()  # fmt: skip
    if newest is None:
        return None
    # Read after the row: a writer's row is committed with the head that covers it.
    if newest["seq"] <= (await _stored_head(conn, key)).seq:
        return None
    message = f"{_named(dict(newest))} lies past the chain's head: it was inserted directly"
    return Break(key, newest["id"], newest["request_id"], message)


def _stray(key: str, stray: dict[str, Any]) -> Break:
    message = f"{_named(stray)} has no place in the chain: it was inserted directly"
    return Break(key, stray["id"], stray["request_id"], message)


async def _stored_head(conn: AsyncConnection, key: str) -> Head:
    stored = (
        await conn.execute(
            select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.tenant == key)
        )
    ).first()
    return Head(int(stored[0]), str(stored[1])) if stored else Head()


async def tenants(conn: AsyncConnection) -> list[str]:
    keys = {str(t) for t in (await conn.execute(select(AuditChainHead.tenant))).scalars()}
    for tenant in (await conn.execute(select(LOG.c.tenant).distinct())).scalars():
        keys.add(NO_TENANT if tenant is None else str(tenant))
    return sorted(keys)


async def verify(
    db: Database,
    tenant: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Verification:
    """Recompute the chains (``tenant``'s, or every tenant's; ``""``: rows without one)."""
    done = Verification()
    # PostgreSQL: one snapshot for the whole check (a prune meanwhile is no false alarm).
    options = {} if db.is_sqlite else {"isolation_level": "REPEATABLE READ"}
    async with db.engine.connect() as plain:
        conn = await plain.execution_options(**options)
        keys = [tenant] if tenant is not None else await tenants(conn)
        for key in keys:
            count, broken = await _verify_tenant(conn, key, start, end)
            done.rows += count
            done.tenants += 1
            if broken is not None:
                done.broken = broken
                return done
    return done


class PruneRefused(Exception):
    """The prefix to prune is not an intact chain: its evidence is kept."""


@dataclass(frozen=True)
class Pruned:
    tenant: str
    rows: int
    anchor: Head
    request_id: str


async def prune(db: Database, tenant: str, before: datetime, actor: str) -> Pruned:
    """Remove ``tenant``'s rows older than ``before`` (a prefix of its chain), recorded."""
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        head = (await lock_heads(conn, [tenant]))[tenant]  # writers wait until the commit
        begin = await anchor(conn, tenant)
        first_kept = (
            await conn.execute(
                select(func.min(LOG.c.seq)).where(
                    _of_tenant(tenant), LOG.c.seq > begin.seq, LOG.c.timestamp >= before
                )
            )
        ).scalar()
        cut = head.seq if first_kept is None else int(first_kept) - 1
        count, end, broken, last = await _walk(conn, tenant, begin, cut)
        if broken is not None:
            raise PruneRefused(f"{broken}; nothing was pruned")
        if end.seq != cut:
            raise PruneRefused(f"tenant {tenant or '(none)'}: the chain ends at seq {end.seq}, "
                               f"its head says {cut}; nothing was pruned")  # fmt: skip
        if count:
            await conn.execute(
                delete(AuditLog).where(_of_tenant(tenant), LOG.c.seq > begin.seq, LOG.c.seq <= cut)
            )
        request_id = f"prune-{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row |= {
            "request_id": request_id, "timestamp": now, "user_id": actor[:255],
            "tenant": None if tenant == NO_TENANT else tenant, "auth_method": "cli",
            "endpoint": "audit.prune", "stream": False, "status": 200,
            "latency_ms": (time.perf_counter() - started) * 1000, "tokens_in": 0,
            "tokens_out": 0, "tokens_used": 0, "tokens_estimated": False, "cost_usd": 0.0,
        }  # fmt: skip
        await conn.execute(
            insert(AuditPrune).values(
                tenant=tenant, pruned_at=now, before=before, rows=count,
                first_seq=begin.seq + 1 if count else None, last_seq=end.seq,
                last_hash=end.hash, last_request_id=last["request_id"] if last else None,
                request_id=request_id,
            )
        )  # fmt: skip
        await insert_linked(conn, [row])
    return Pruned(tenant, count, end, request_id)
