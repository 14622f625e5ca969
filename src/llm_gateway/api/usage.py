"""``GET /api/v1/usage`` and ``GET /api/v1/limits``: what was spent, and what is left.

Both are actions through the pipeline (``usage.read``, ``limits.read``),
authenticated, decided by the policy and audited. A usage read asks the
policy about two scopes at once, the caller's own rows and their tenant's
(``input.request.scope`` is ``own`` or ``tenant``), and answers with the
widest it allows: the shipped policy lets everyone read their own usage and
auditors and administrators their tenant's. Nobody reads another tenant's:
the query is always confined to the caller's tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.errors import InvalidRequest, PolicyDenied
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.runtime import AppState
from llm_gateway.storage.usage import (
    GroupBy,
    UsageFilter,
    UsageRow,
    month_start,
    parse_moment,
    total,
    usage_totals,
)

router = APIRouter(tags=["usage"])

SCOPES = ("own", "tenant")


class UsageReport(BaseModel):
    group_by: GroupBy
    scope: str
    start: str
    end: str
    rows: list[UsageRow]
    total: UsageRow


@router.get("/api/v1/usage", response_model=UsageReport, responses=ERRORS)
async def usage(
    request: Request,
    group_by: str = Query("user", description="user, team, tenant, model or key"),
    start: str | None = Query(
        None, alias="from", description="ISO 8601 date or time (default: the month's start)"
    ),
    end: str | None = Query(
        None, alias="to", description="ISO 8601 date or time, exclusive (default: now)"
    ),
    user: str | None = Query(None, description="one user's rows (within the tenant)"),
) -> Response:
    """Requests, tokens and cost per group, from the audit trail, as far as the policy allows."""
    state: AppState = request.app.state.gateway
    handler = partial(_usage, state, group_by, start, end, user)
    return await run_action(request, "usage.read", handler, targets=SCOPES, target_field="scope")


async def _usage(
    state: AppState,
    group_by: str,
    start: str | None,
    end: str | None,
    user: str | None,
    ctx: RequestContext,
) -> dict[str, Any]:
    assert isinstance(ctx.payload, ActionCall)
    assert ctx.principal is not None
    grouping = _group_by(group_by)
    now = datetime.now(UTC)
    begin = _moment(start, "from") if start else month_start(now)
    finish = _moment(end, "to") if end else now
    if finish <= begin:
        raise InvalidRequest("'to' must be later than 'from'", param="to")
    permitted = ctx.payload.permitted
    principal = ctx.principal
    if "tenant" in permitted:
        scope = "tenant"
    elif "own" in permitted:
        scope, user = "own", principal.user_id
    else:
        raise PolicyDenied("the policy does not allow this caller to read usage")
    where = UsageFilter(begin, finish, user=user, restrict_tenant=True, tenant_is=principal.tenant)
    async with state.db.sessions() as session:
        rows = await usage_totals(session, grouping, where)
    return {
        "group_by": grouping.value,
        "scope": scope,
        "start": _iso(begin),
        "end": _iso(finish),
        "rows": [row.as_json() for row in rows],
        "total": total(rows).as_json(),
    }


@router.get("/api/v1/limits", responses=ERRORS)
async def limits(request: Request) -> Response:
    """The caller's own rate windows and budgets, as they stand (nothing is counted)."""
    state: AppState = request.app.state.gateway
    return await run_action(request, "limits.read", partial(_limits, state))


async def _limits(state: AppState, ctx: RequestContext) -> dict[str, Any]:
    assert ctx.principal is not None
    if state.limiter is None:
        return {"enabled": False, "scopes": []}
    return {"enabled": True, "scopes": await state.limiter.peek(ctx.principal, ctx.client_ip)}


def _group_by(raw: str) -> GroupBy:
    try:
        return GroupBy(raw)
    except ValueError:
        options = ", ".join(g.value for g in GroupBy)
        raise InvalidRequest(f"group_by must be one of {options}", param="group_by") from None


def _moment(raw: str, name: str) -> datetime:
    try:
        return parse_moment(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name!r}: {exc}", param=name) from None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
