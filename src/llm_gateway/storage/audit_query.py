"""Reading the audit trail: filtered, newest first, a page at a time; and its rows as JSON.

The rows hold no prompt or answer text (only digests and lengths), so what is
read here is safe to show to whoever may read the audit trail at all.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.storage.models import AuditLog

LOG = AuditLog.__table__
DECISIONS = ("allow", "deny", "error")
MAX_LIMIT = 500
#: The columns of an exported or served row, in order.
FIELDS = tuple(c.name for c in LOG.columns)
_JSON_FIELDS = ("policy_reasons", "dlp_findings", "attempts")
_ENTITY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class AuditQuery:
    """Which rows: each field set narrows. ``restrict_tenant`` confines to ``tenant_is``
    (``None``: the rows without a tenant)."""

    start: datetime | None = None
    end: datetime | None = None
    restrict_tenant: bool = False
    tenant_is: str | None = None
    user: str | None = None
    team: str | None = None
    model: str | None = None
    status: int | None = None
    error_code: str | None = None
    decision: str | None = None
    finding: str | None = None
    request_id: str | None = None
    before_id: int | None = None  # the page cursor: rows with a smaller id

    def statement(self, *, newest_first: bool = True) -> Select[Any]:
        query = select(LOG)
        if self.restrict_tenant:
            query = query.where(
                LOG.c.tenant.is_(None) if self.tenant_is is None else LOG.c.tenant == self.tenant_is
            )
        if self.start is not None:
            query = query.where(LOG.c.timestamp >= self.start)
        if self.end is not None:
            query = query.where(LOG.c.timestamp < self.end)
        for column, value in (
            (LOG.c.user_id, self.user), (LOG.c.team, self.team), (LOG.c.model, self.model),
            (LOG.c.status, self.status), (LOG.c.error_code, self.error_code),
            (LOG.c.policy_decision, self.decision), (LOG.c.request_id, self.request_id),
        ):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if self.finding is not None:
            if not _ENTITY.match(self.finding):
                raise ValueError("an entity type: letters, digits, '_', '.', ':' or '-'")
            # dlp_findings is compact JSON written by orjson: {"entity":"EMAIL",...}
            query = query.where(
                LOG.c.dlp_findings.contains(f'"entity":"{self.finding}"', autoescape=True)
            )
        if self.before_id is not None:
            query = query.where(LOG.c.id < self.before_id)
        return query.order_by(LOG.c.id.desc() if newest_first else LOG.c.id)


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"before": row_id})).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this endpoint returned") from None
    before = data.get("before") if isinstance(data, dict) else None
    if not isinstance(before, int) or isinstance(before, bool) or before < 1:
        raise ValueError("not a cursor this endpoint returned")
    return before


async def page(
    conn: AsyncConnection, query: AuditQuery, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` rows, newest first, and the cursor of the next page (None: no more)."""
    found = (await conn.execute(query.statement().limit(limit + 1))).mappings().all()
    rows = [public(r) for r in found[:limit]]
    more = len(found) > limit
    return rows, encode_cursor(rows[-1]["id"]) if more and rows else None


async def stream(conn: AsyncConnection, query: AuditQuery) -> AsyncIterator[dict[str, Any]]:
    """Every matching row, oldest first, without holding them all (for exports)."""
    result = await conn.stream(
        query.statement(newest_first=False).execution_options(yield_per=1000)
    )
    async for row in result.mappings():
        yield public(row)


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON values: times in ISO 8601 (UTC), the JSON columns parsed."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = row[name]
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        elif name in _JSON_FIELDS and value is not None:
            value = orjson.loads(value)
        out[name] = value
    return out
