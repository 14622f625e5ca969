"""``POST /api/v1/dlp/scan``: what DLP finds in a text, without calling any model.

Request ``{"text": "...", "redact": false}``; answer ``{"findings": [{"entity",
"category", "start", "end", "score", "rule", "action"}], "redacted_text"?}``.
Offsets are character offsets into the text the caller sent; the matched
values are never echoed back. Authenticated, and decided by the policy as
action ``dlp.scan``. Errors use the native API's format.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.api import fields as f
from llm_gateway.api import native
from llm_gateway.api.http import client_ip, error_response, read_body, request_id_of
from llm_gateway.auth import Credentials
from llm_gateway.dlp.report import finding_json, redact_all
from llm_gateway.errors import DlpUnavailable, GatewayError
from llm_gateway.pipeline.authorize import enforce
from llm_gateway.policy.inputs import action_input
from llm_gateway.runtime import AppState


async def scan(request: Request) -> Response:
    state: AppState = request.app.state.gateway
    try:
        body = await _scan(request, state)
    except GatewayError as error:
        return error_response(error, request_id_of(request), native.error_body)
    return Response(orjson.dumps(body), media_type="application/json")


async def _scan(request: Request, state: AppState) -> dict[str, Any]:
    credentials = Credentials.from_headers(request.headers.raw)
    principal = await state.authenticator.authenticate(credentials)
    document = action_input(
        principal,
        "dlp.scan",
        client_ip=client_ip(request),
        environment=state.settings.policy.environment,
    )
    enforce(await state.policy.decide(document))
    if state.dlp is None:
        raise DlpUnavailable("DLP is switched off on this gateway (DLP_ENABLED=false)")
    data = f.decode_body(await read_body(request, state.settings.http.max_body_bytes))
    text = "" if data.get("text") == "" else f.req_str(data, "text")
    redact = bool(f.opt_bool(data, "redact"))
    caller = (principal.tenant or "", principal.user_id)
    findings = (await state.dlp.scan_all([text], caller=caller))[0]
    body: dict[str, Any] = {"findings": [finding_json(x) for x in findings]}
    if redact:
        body["redacted_text"] = redact_all(text, findings)
    return body

