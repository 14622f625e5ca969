"""The three chat front doors, each a wire format plugged into the same pipeline."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from llm_gateway.api import anthropic, native, openai
from llm_gateway.api.http import (
    StreamResponse,
    client_ip,
    error_response,
    read_body,
    request_id_of,
)
from llm_gateway.auth import Credentials
from llm_gateway.chat import ChatResponse, EventStream
from llm_gateway.errors import GatewayError
from llm_gateway.pipeline.context import RequestContext, RequestParser
from llm_gateway.runtime import AppState


@dataclass(frozen=True, slots=True)
class FrontDoor:
    name: str
    path: str
    parse: RequestParser
    encode_response: Callable[[RequestContext, ChatResponse], bytes]
    encode_stream: Callable[[RequestContext, EventStream], AsyncGenerator[bytes, None]]
    error_body: Callable[[GatewayError, str], dict[str, Any]]
    stream_media_type: str = "text/event-stream"

    def error_response(self, error: GatewayError, request_id: str) -> Response:
        return error_response(error, request_id, self.error_body)

    async def handle(self, request: Request, state: AppState) -> Response | ASGIApp:
        ctx = RequestContext(
            endpoint=self.name,
            credentials=Credentials.from_headers(request.headers.raw),
            read_body=partial(read_body, request, state.settings.http.max_body_bytes),
            parse=self.parse,
            request_id=request_id_of(request),
            client_ip=client_ip(request),
            conversation_id=request.headers.get("x-conversation-id"),
        )
        try:
            outcome = await state.pipeline(ctx)
        except GatewayError as error:
            return self.error_response(error, ctx.request_id)
        if isinstance(outcome, ChatResponse):
            return Response(self.encode_response(ctx, outcome), media_type="application/json")
        return StreamResponse(self.encode_stream(ctx, outcome), outcome, self.stream_media_type)


DOORS = (
    FrontDoor("openai", "/v1/chat/completions", openai.parse_request, openai.encode_response,
              openai.encode_stream, openai.error_body),
    FrontDoor("anthropic", "/v1/messages", anthropic.parse_request, anthropic.encode_response,
              anthropic.encode_stream, anthropic.error_body),
    FrontDoor("native", "/api/v1/chat", native.parse_request, native.encode_response,
              native.encode_stream, native.error_body),
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
