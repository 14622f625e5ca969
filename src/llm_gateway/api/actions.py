"""Management endpoints as actions through the pipeline: authenticated, decided, audited.

Each management route (``GET /v1/models``, ``POST /api/v1/dlp/scan``; the
audit, usage, confirmation and admin endpoints to come) is a documented
FastAPI route whose work is a handler run by the action pipeline
(:func:`llm_gateway.pipeline.build_action_pipeline`): the same
authentication, a policy decision on ``input.action``, and the same record in
the audit trail as a chat call. Errors are rendered in the format the route's
callers expect, never as FastAPI's default.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.api import native
from llm_gateway.api.http import client_ip, error_response, read_body, request_id_of
from llm_gateway.auth import Credentials
from llm_gateway.errors import GatewayError
from llm_gateway.pipeline.context import (
    ActionCall,
    ActionHandler,
    ActionResult,
    RequestContext,
    SubjectLoader,
)
from llm_gateway.runtime import AppState

ErrorRender = Callable[[GatewayError, str], dict[str, Any]]


class ErrorDetail(BaseModel):
    code: str
    message: str
    type: str
    request_id: str


class ErrorBody(BaseModel):
    """The native error format (the OpenAI- and Anthropic-shaped routes use theirs)."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "The request is malformed"),
        (401, "No valid credential"),
        (403, "The policy does not allow this action"),
        (429, "Too many requests"),
        (503, "A service the action needs is unavailable"),
    )
}


async def run_action(
    request: Request,
    action: str,
    handler: ActionHandler,
    *,
    targets: tuple[str, ...] | None = None,
    target_field: Literal["model", "scope"] = "model",
    render: ErrorRender = native.error_body,
    subject: SubjectLoader | None = None,
) -> Response:
    """Run ``handler`` as ``action`` through the action pipeline; its body answers as JSON
    (a ``Response`` it returns is sent as it is)."""
    state: AppState = request.app.state.gateway
    ctx = RequestContext(
        endpoint=action,
        credentials=Credentials.from_headers(request.headers.raw),
        read_body=partial(read_body, request, state.settings.http.max_body_bytes),
        payload=ActionCall(action, handler, targets, target_field, subject=subject),
        request_id=request_id_of(request),
        client_ip=client_ip(request, state.settings.http.trusted_proxies),
        headers=request.headers,
    )
    try:
        outcome = await state.actions(ctx)
    except GatewayError as error:
        return error_response(error, ctx.request_id, render)
    assert isinstance(outcome, ActionResult)
    if isinstance(outcome.body, Response):  # a document (a report as HTML or PDF), as it is
        return outcome.body
    return Response(orjson.dumps(outcome.body), media_type="application/json")
