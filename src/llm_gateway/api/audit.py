"""``GET /api/v1/audit`` and ``GET /api/v1/audit/{request_id}``: reading the audit trail.

Both are the ``audit.read`` action through the pipeline: authenticated,
decided by the policy (the shipped one allows auditors and administrators)
and audited themselves. Whatever the policy allows, a caller reads only their
own tenant's rows. Pages are newest first by id; ``next_cursor`` is opaque and
leads to the next older page. A bad filter is a 400 ``invalid_field`` naming
the parameter; an unknown request id (or another tenant's) a 404.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.errors import InvalidRequest, NotFound
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.runtime import AppState
from llm_gateway.storage.audit_query import (
    DECISIONS,
    MAX_LIMIT,
    AuditQuery,
    decode_cursor,
    page,
    public,
)
from llm_gateway.storage.usage import parse_moment

router = APIRouter(tags=["audit"])

_READ_ERRORS = ERRORS | {404: {"model": ERRORS[400]["model"], "description": "No such record"}}


class AuditRecordNotFound(NotFound):
    code = "audit_record_not_found"


def _invalid(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"{param}: expected {expected}", code="invalid_field", param=param,
        details={"param": param},
    )  # fmt: skip


@router.get("/api/v1/audit", responses=ERRORS)
async def audit_rows(  # noqa: PLR0913 - one argument per documented filter
    request: Request,
    start: str | None = Query(None, alias="from", description="ISO 8601 date or time"),
    end: str | None = Query(None, alias="to", description="ISO 8601 date or time, exclusive"),
    user: str | None = Query(None),
    team: str | None = Query(None),
    model: str | None = Query(None, description="the model served"),
    status: str | None = Query(None, description="HTTP status, e.g. 403"),
    error_code: str | None = Query(None),
    decision: str | None = Query(None, description="allow, deny or error"),
    finding: str | None = Query(None, description="a DLP entity type, e.g. EMAIL"),
    limit: str | None = Query(None, description=f"rows per page, 1 to {MAX_LIMIT} (100)"),
    cursor: str | None = Query(None, description="the next_cursor of the previous page"),
) -> Response:
    """The caller's tenant's audit rows, newest first, filtered, a page at a time."""
    state: AppState = request.app.state.gateway
    raw = {
        "from": start, "to": end, "user": user, "team": team, "model": model,
        "status": status, "error_code": error_code, "decision": decision,
        "finding": finding, "limit": limit, "cursor": cursor,
    }  # fmt: skip
    return await run_action(request, "audit.read", partial(_rows, state, raw))


@router.get("/api/v1/audit/{request_id}", responses=_READ_ERRORS)
async def audit_row(request: Request, request_id: str) -> Response:
    """One request's audit row (of the caller's tenant)."""
    state: AppState = request.app.state.gateway
    return await run_action(request, "audit.read", partial(_one, state, request_id))


def _confined(query: AuditQuery, ctx: RequestContext) -> AuditQuery:
    assert ctx.principal is not None
    return replace(query, restrict_tenant=True, tenant_is=ctx.principal.tenant)


def _query(raw: dict[str, str | None]) -> AuditQuery:
    """The filters, checked (after authentication: a stranger learns nothing from a 400)."""
    query = AuditQuery(
        start=_moment(raw["from"], "from"), end=_moment(raw["to"], "to"),
        user=raw["user"], team=raw["team"], model=raw["model"], error_code=raw["error_code"],
        status=_status(raw["status"]), decision=_decision(raw["decision"]),
        finding=_finding(raw["finding"]), before_id=_cursor(raw["cursor"]),
    )  # fmt: skip
    if query.start is not None and query.end is not None and query.end <= query.start:
        raise _invalid("to", "a time later than 'from'")
    return query


async def _rows(state: AppState, raw: dict[str, str | None], ctx: RequestContext) -> Any:
    query, limit = _query(raw), _limit(raw["limit"])
    async with state.db.engine.connect() as conn:
        rows, next_cursor = await page(conn, _confined(query, ctx), limit)
    return {"rows": rows, "next_cursor": next_cursor}


async def _one(state: AppState, request_id: str, ctx: RequestContext) -> Any:
    query = _confined(AuditQuery(request_id=request_id), ctx)
    async with state.db.engine.connect() as conn:
        found = (await conn.execute(query.statement().limit(1))).mappings().first()
    if found is None:
        raise AuditRecordNotFound(f"no audit record for request {request_id[:64]!r}")
    return public(found)


def _moment(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_moment(raw)
    except ValueError:
        raise _invalid(name, "an ISO 8601 date or time") from None


def _integer(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) < 10  # not "²", not a huge number


def _status(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not _integer(raw) or not 100 <= int(raw) <= 599:
        raise _invalid("status", "an HTTP status from 100 to 599")
    return int(raw)


def _decision(raw: str | None) -> str | None:
    if raw is not None and raw not in DECISIONS:
        raise _invalid("decision", "one of " + ", ".join(DECISIONS))
    return raw


def _finding(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        AuditQuery(finding=raw).statement()
    except ValueError as exc:
        raise _invalid("finding", str(exc)) from None
    return raw


def _limit(raw: str | None) -> int:
    if raw is None:
        return 100
    if not _integer(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _invalid("limit", f"an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return decode_cursor(raw)
    except ValueError as exc:
        raise _invalid("cursor", str(exc)) from None
