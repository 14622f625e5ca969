"""``GET /api/v1/reports/compliance``: a framework's compliance evidence as JSON, HTML or PDF.

The ``reports.read`` action through the pipeline: authenticated, decided by the
policy (the shipped one allows auditors and administrators) and audited itself.
Whatever the policy allows, the report covers only the caller's tenant's rows,
and its chain check only that tenant's chain. ``format`` (``json``, ``html`` or
``pdf``) or else the ``Accept`` header chooses the form; the period is ``from``
(default: the month's start) to ``to`` (exclusive; default: now). A bad
parameter is a 400 ``invalid_field`` naming it; HTML and PDF without the
``reports`` extra a 501 ``report_format_unavailable``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.errors import ErrorKind, GatewayError, InvalidRequest
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.reports.compliance import ComplianceReport, compliance_report
from llm_gateway.reports.evidence import Scope
from llm_gateway.reports.frameworks import FRAMEWORKS
from llm_gateway.reports.render import FORMATS, MEDIA_TYPES, Format, RenderUnavailable, render
from llm_gateway.runtime import AppState
from llm_gateway.storage.usage import month_start, parse_moment

router = APIRouter(tags=["reports"])

_RESPONSES: dict[int | str, dict[str, Any]] = ERRORS | {
    200: {
        "model": ComplianceReport,
        "description": "The report, as JSON, HTML or PDF",
        "content": {"text/html": {}, "application/pdf": {}},
    },
    501: {"model": ERRORS[400]["model"], "description": "HTML or PDF, not installed"},
}


class ReportFormatUnavailable(GatewayError):
    status = 501
    kind = ErrorKind.UNAVAILABLE
    code = "report_format_unavailable"


def _invalid(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"{param}: expected {expected}", code="invalid_field", param=param,
        details={"param": param},
    )  # fmt: skip


@router.get("/api/v1/reports/compliance", responses=_RESPONSES)
async def compliance(
    request: Request,
    framework: str | None = Query(None, description="soc2, gdpr or hipaa"),
    start: str | None = Query(None, alias="from", description="ISO 8601 date or time"),
    end: str | None = Query(None, alias="to", description="ISO 8601 date or time, exclusive"),
    form: str | None = Query(None, alias="format", description="json, html or pdf"),
) -> Response:
    """The evidence the gateway recorded for each of a framework's controls, for the
    caller's tenant: counts, example request ids, charts of the period (HTML, PDF)."""
    state: AppState = request.app.state.gateway
    raw = {"framework": framework, "from": start, "to": end, "format": form}
    accept = request.headers.get("accept", "")
    return await run_action(request, "reports.read", partial(_report, state, raw, accept))


async def _report(
    state: AppState, raw: dict[str, str | None], accept: str, ctx: RequestContext
) -> Any:
    assert ctx.principal is not None
    framework, scope, form = _framework(raw["framework"]), _scope(raw), _format(raw, accept)
    scope = Scope(scope.start, scope.end, tenant=ctx.principal.tenant)
    report = await compliance_report(state.db, framework, scope)
    if form == "json":
        return report.model_dump(mode="json")
    try:
        body = await asyncio.to_thread(render, report, form)
    except RenderUnavailable as exc:
        raise ReportFormatUnavailable(str(exc), param="format") from None
    disposition = "attachment" if form == "pdf" else "inline"
    headers = {"content-disposition": f'{disposition}; filename="{report.filename(form)}"'}
    return Response(body, media_type=MEDIA_TYPES[form], headers=headers)


def _framework(raw: str | None) -> str:
    if raw is None or raw.lower() not in FRAMEWORKS:
        raise _invalid("framework", "one of " + ", ".join(FRAMEWORKS))
    return raw.lower()


def _scope(raw: dict[str, str | None]) -> Scope:
    now = datetime.now(UTC)
    start = _moment(raw["from"], "from") or month_start(now)
    end = _moment(raw["to"], "to") or now
    if end <= start:
        raise _invalid("to", "a time later than 'from'")
    return Scope(start, end)


def _moment(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_moment(raw)
    except (ValueError, OverflowError):
        raise _invalid(name, "an ISO 8601 date or time") from None


def _format(raw: dict[str, str | None], accept: str) -> Format:
    asked = raw["format"]
    if asked is not None:
        for form in FORMATS:
            if asked.lower() == form:
                return form
        raise _invalid("format", "one of " + ", ".join(FORMATS))
    if "application/pdf" in accept:
        return "pdf"
    return "html" if "text/html" in accept else "json"
