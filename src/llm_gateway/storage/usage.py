"""Usage and cost totals from the audit trail: who spent what, on which model, when.

The same rows the specification's cost query reads (``audit_logs``: ``user_id``,
``model``, ``tokens_used``, ``cost_usd``, ``timestamp``), summed by one
dimension over a time range. Only chat calls count (management actions have
neither tokens nor cost), so the request counts are calls to models.
``GET /api/v1/usage`` and ``llm-gateway usage`` both answer from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llm_gateway.storage.models import AuditLog

__all__ = [
    "CHAT_ENDPOINTS", "GroupBy", "UsageFilter", "UsageRow", "month_start", "parse_moment",
    "total", "usage_totals",
]  # fmt: skip

CHAT_ENDPOINTS = ("openai", "anthropic", "native")


class GroupBy(StrEnum):
    USER = "user"
    TEAM = "team"
    TENANT = "tenant"
    MODEL = "model"
    KEY = "key"


_COLUMNS = {
    GroupBy.USER: AuditLog.user_id,
    GroupBy.TEAM: AuditLog.team,
    GroupBy.TENANT: AuditLog.tenant,
    GroupBy.MODEL: AuditLog.model,
    GroupBy.KEY: AuditLog.key_id,
}


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which rows count: a time range ``[start, end)``, and optionally one tenant or user.

    With ``restrict_tenant``, only the rows of tenant ``tenant_is`` count (``None``:
    the rows without a tenant, for callers who have none); with ``user``, one user's.
    """

    start: datetime
    end: datetime
    user: str | None = None
    restrict_tenant: bool = False
    tenant_is: str | None = None


class UsageRow(BaseModel):
    """One group's totals (``group`` None: the rows without a value, or the grand total)."""

    model_config = ConfigDict(frozen=True)

    group: str | None
    requests: int
    tokens_in: int
    tokens_out: int
    tokens_used: int
    cost_usd: float

    def as_json(self) -> dict[str, object]:
        return {**self.model_dump(), "cost_usd": round(self.cost_usd, 6)}


async def usage_totals(
    session: AsyncSession, group_by: GroupBy, where: UsageFilter
) -> list[UsageRow]:
    """Totals per value of ``group_by``, the most expensive first."""
    column = _COLUMNS[group_by]
    cost = func.coalesce(func.sum(AuditLog.cost_usd), 0.0)
    query = (
        select(
            column,
            func.count(),
            func.coalesce(func.sum(AuditLog.tokens_in), 0),
            func.coalesce(func.sum(AuditLog.tokens_out), 0),
            func.coalesce(func.sum(AuditLog.tokens_used), 0),
            cost,
        )
        .where(
            AuditLog.timestamp >= where.start,
            AuditLog.timestamp < where.end,
            AuditLog.endpoint.in_(CHAT_ENDPOINTS),
        )
        .group_by(column)
        .order_by(cost.desc(), column)
    )
    if where.restrict_tenant:
        query = query.where(
            AuditLog.tenant.is_(None) if where.tenant_is is None
            else AuditLog.tenant == where.tenant_is
        )  # fmt: skip
    if where.user is not None:
        query = query.where(AuditLog.user_id == where.user)
    rows = (await session.execute(query)).all()
    return [
        UsageRow(
            group=group, requests=n, tokens_in=t_in, tokens_out=t_out, tokens_used=used,
            cost_usd=spent,
        )
        for group, n, t_in, t_out, used, spent in rows
    ]  # fmt: skip


def total(rows: list[UsageRow]) -> UsageRow:
    """The rows summed, as one row without a group."""
    return UsageRow(
        group=None,
        requests=sum(r.requests for r in rows),
        tokens_in=sum(r.tokens_in for r in rows),
        tokens_out=sum(r.tokens_out for r in rows),
        tokens_used=sum(r.tokens_used for r in rows),
        cost_usd=sum(r.cost_usd for r in rows),
    )


def parse_moment(raw: str) -> datetime:
    """An ISO 8601 date or time (``2026-12-01``, ``2026-12-01T08:00Z``); without a zone, UTC.

    Raises ``ValueError`` with what was expected.
    """
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("expected an ISO 8601 date or time, such as 2026-12-01") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def month_start(now: datetime) -> datetime:
    """The first moment of ``now``'s calendar month, UTC (what budgets count from)."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
