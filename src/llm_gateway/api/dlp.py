"""``POST /api/v1/dlp/scan``: what DLP finds in a text, without calling any model.

Offsets are character offsets into the text the caller sent; the matched
values are never echoed back. An action (``dlp.scan``) through the pipeline:
authenticated, decided by the policy, audited; the caller's obligations hold
as for a chat call (``dlp_mode`` replaces every rule's action, ``ner: false``
leaves NER out, ``ner_partial: block`` refuses a text NER could not read in
full). The answer's ``ner`` says how much of the text NER read: ``full``,
``partial (time budget)``, ``partial (size cap)``, ``skipped (extra not
installed)``..., or ``off``. Errors use the native API's format.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from llm_gateway.api import fields as f
from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.dlp.report import DlpReport, finding_json, redact_all
from llm_gateway.dlp.service import require_complete
from llm_gateway.errors import DlpUnavailable
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.pipeline.inspect import dlp_mode, ner_caller, ner_complete, ner_wanted
from llm_gateway.runtime import AppState

router = APIRouter(tags=["dlp"])


class ScanRequest(BaseModel):
    text: str = Field(description="The text to scan (not stored, not logged)")
    redact: bool = Field(False, description="Also return the text with every finding redacted")


class ScanFinding(BaseModel):
    entity: str
    category: str
    start: int = Field(description="Character offset of the finding's first character")
    end: int = Field(description="Character offset just past its last character")
    score: float
    rule: str
    action: str = Field(description="block, redact or alert, after the caller's dlp_mode")


class ScanResult(BaseModel):
    findings: list[ScanFinding]
    ner: str = Field(
        description="How much of the text NER read: full, partial (time budget), "
        "partial (size cap), skipped (extra not installed)..., or off"
    )
    redacted_text: str | None = None


@router.post(
    "/api/v1/dlp/scan",
    response_model=ScanResult,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ScanRequest.model_json_schema()}},
        }
    },
)
async def scan(request: Request) -> Response:
    """Scan a text with the gateway's DLP rules (and NER, if on) as the caller's policy says."""
    return await run_action(request, "dlp.scan", partial(_scan, request.app.state.gateway))


async def _scan(state: AppState, ctx: RequestContext) -> dict[str, Any]:
    if state.dlp is None:
        raise DlpUnavailable("DLP is switched off on this gateway (DLP_ENABLED=false)")
    data = f.decode_body(await ctx.read_body())
    text = "" if data.get("text") == "" else f.req_str(data, "text")
    redact = bool(f.opt_bool(data, "redact"))
    mode, ner = dlp_mode(ctx.decision), ner_wanted(ctx.decision)
    scanned = await state.dlp.scan([text], mode=mode, ner=ner, caller=ner_caller(ctx))
    (findings,) = scanned.findings
    if ctx.dlp is None:  # the audit row says how much NER read (its findings stay out of it)
        ctx.dlp = DlpReport()
    ctx.dlp.ner_read("request", scanned.ner)
    if ner_complete(ctx.decision):
        require_complete(scanned.ner)
    body: dict[str, Any] = {
        "findings": [finding_json(x) for x in findings],
        "ner": str(scanned.ner),
    }
    if redact:
        body["redacted_text"] = redact_all(text, findings)
    return body
