"""The three chat front doors, each a wire format plugged into the same pipeline."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from llm_gateway.api import anthropic, native, openai
from llm_gateway.api.http import (
    StreamResponse,
    client_ip,
    error_response,
    from_proxy,
    read_body,
    request_id_of,
)
from llm_gateway.api.limit_headers import anthropic_headers, openai_headers
from llm_gateway.auth import Credentials
from llm_gateway.chat import (
    ChatResponse,
    EventStream,
)
from llm_gateway.errors import GatewayError
from llm_gateway.pipeline.authorize import STRATEGY_HEADER
from llm_gateway.pipeline.context import (
    ActionResult,
    Challenge,
    ChatCall,
    RequestContext,
    RequestParser,
)
from llm_gateway.ratelimit import Admission
from llm_gateway.routing import REGION_HEADER
from llm_gateway.runtime import AppState
from llm_gateway.streams import as_stream

CONFIRMATION_HEADER = "x-confirmation-id"
MFA_HEADER = "x-gateway-mfa"  # a TOTP code for a confirmation that needs MFA
ENVIRONMENT_HEADER = "x-environment"  # what a confirmation rule's environments are matched to
GROUNDED_HEADER = "x-gateway-grounded"  # the answer's grounding verdict, when it was checked
CACHE_HEADER = "x-gateway-cache"  # "stale": every model failed; a cached answer was served


@dataclass(frozen=True, slots=True)
class FrontDoor:
    name: str
    path: str
    parse: RequestParser
    encode_response: Callable[[RequestContext, ChatResponse], bytes]
    encode_stream: Callable[[RequestContext, EventStream], AsyncGenerator[bytes, None]]
    error_body: Callable[[GatewayError, str], dict[str, Any]]
    stream_error: Callable[[GatewayError, str], bytes]
    limit_headers: Callable[[Admission | None], dict[str, str]] = openai_headers
    confirmation_in_metadata: bool = False  # where the format has room for a challenge's object
    stream_media_type: str = "text/event-stream"

    def error_response(
        self, error: GatewayError, request_id: str, headers: dict[str, str] | None = None
    ) -> Response:
        return error_response(error, request_id, self.error_body, headers)

    async def handle(self, request: Request, state: AppState) -> Response | ASGIApp:
        trusted = state.settings.http.trusted_proxies
        ctx = RequestContext(
            endpoint=self.name,
            credentials=Credentials.from_headers(request.headers.raw),
            read_body=partial(read_body, request, state.settings.http.max_body_bytes),
            payload=ChatCall(self.parse),
            request_id=request_id_of(request),
            client_ip=client_ip(request, trusted),
            conversation_id=request.headers.get("x-conversation-id"),
            headers=request.headers,
        )
        ctx.call.strategy = request.headers.get(STRATEGY_HEADER)  # checked by Authorize
        ctx.environment = request.headers.get(ENVIRONMENT_HEADER)
        ctx.mfa_code = request.headers.get(MFA_HEADER)
        regions = state.routing.router.regions
        if regions:
            header = request.headers.get(REGION_HEADER) if from_proxy(request, trusted) else None
            ctx.region = regions.of(header, ctx.client_ip)
        try:
            outcome = await state.pipeline(ctx)
        except GatewayError as error:
            return self.error_response(error, ctx.request_id, self.limit_headers(ctx.limits))
        headers = self.limit_headers(ctx.limits)
        if ctx.call.stale:
            headers[CACHE_HEADER] = "stale"
        if ctx.call.grounding is not None:  # known before the answer starts (not a stream's)
            headers[GROUNDED_HEADER] = "true" if ctx.call.grounding.grounded else "false"
        if isinstance(outcome, ChatResponse):
            body = self.encode_response(ctx, outcome)
            return Response(body, media_type="application/json", headers=headers)
        if isinstance(outcome, Challenge):
            return self.challenge_response(ctx, outcome, headers)
        assert not isinstance(outcome, ActionResult), "a front door ran a management action"
        chunks = self.encode_stream(ctx, outcome)
        cut = partial(self._cut, ctx)
        return StreamResponse(
            chunks, outcome, self.stream_media_type, headers, drain=state.drain, cut=cut
        )

    def _cut(self, ctx: RequestContext, error: GatewayError) -> bytes:
        """A stream the server's shutdown ends: recorded with ``error``, which ends it."""
        ctx.error = error
        return self.stream_error(error, ctx.request_id)

    def challenge_response(
        self, ctx: RequestContext, challenge: Challenge, headers: dict[str, str]
    ) -> Response | ASGIApp:
        """A held request's challenge, as the assistant's answer in this door's format.

        The text is the answer's content, so any chat client shows it; the id is in
        ``x-confirmation-id``; a JSON answer also carries the ``confirmation``
        object (at the top level, or in the native format's ``metadata``).
        """
        headers = {**headers, CONFIRMATION_HEADER: challenge.confirmation_id}
        model = ctx.chat.model if ctx.chat is not None else ""
        if ctx.chat is not None and ctx.chat.stream:
            stream = as_stream(ChatResponse(model, text=challenge.text))
            chunks = self.encode_stream(ctx, stream)
            return StreamResponse(chunks, stream, self.stream_media_type, headers)
        answer = ChatResponse(model, text=challenge.text, usage=ctx.usage)
        body = orjson.loads(self.encode_response(ctx, answer))
        place = body.setdefault("metadata", {}) if self.confirmation_in_metadata else body
        place["confirmation"] = challenge.confirmation
        return Response(orjson.dumps(body), media_type="application/json", headers=headers)


DOORS = (
    FrontDoor("openai", "/v1/chat/completions", openai.parse_request, openai.encode_response,
              openai.encode_stream, openai.error_body, openai.stream_error),
    FrontDoor("anthropic", "/v1/messages", anthropic.parse_request, anthropic.encode_response,
              anthropic.encode_stream, anthropic.error_body, anthropic.stream_error,
              anthropic_headers),
    FrontDoor("native", "/api/v1/chat", native.parse_request, native.encode_response,
              native.encode_stream, native.error_body, native.stream_error,
              confirmation_in_metadata=True),
)  # fmt: skip


def routes() -> list[Route]:
    """The front doors as plain Starlette routes, for method checks (405) and listing.

    In service, :class:`llm_gateway.app.Gateway` dispatches chat calls to the
    doors before FastAPI's middleware and routing: the doors validate, handle
    errors and format responses themselves and need none of it.
    """
    return [Route(door.path, _endpoint(door), methods=["POST"], name=door.name) for door in DOORS]


def _endpoint(door: FrontDoor) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response | ASGIApp:
        return await door.handle(request, request.app.state.gateway)

    endpoint.__name__ = f"{door.name}_chat"
    return endpoint
