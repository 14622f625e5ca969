"""Small ASGI pieces the front doors share: request ids, bounded bodies, streamed answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from llm_gateway.chat import EventStream
from llm_gateway.errors import BodyTooLarge, GatewayError, InvalidRequest
from llm_gateway.pipeline.context import new_request_id

REQUEST_ID_HEADER = b"x-request-id"


def with_request_id(send: Send, request_id: str) -> Send:
    """``send``, adding the ``x-request-id`` header to the response."""
    header = (REQUEST_ID_HEADER, request_id.encode())

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return send_with_id


def request_id_of(request: Request) -> str:
    state = request.scope.get("state") or {}
    return str(state.get("request_id") or new_request_id())


def error_response(
    error: GatewayError,
    request_id: str,
    render: Callable[[GatewayError, str], dict[str, Any]],
) -> Response:
    """``error`` in a front door's format (``render``), with the headers its status calls for."""
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after)))
    if error.status == 401:
        headers["www-authenticate"] = "Bearer"
    return Response(
        orjson.dumps(render(error, request_id)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("the Content-Length header is not a number") from None
        if size > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the request body is larger than the limit of {limit} bytes")


class StreamResponse:
    """Sends a stream's encoded chunks as they come, and always closes the stream.

    Unlike Starlette's StreamingResponse it needs no task group per response:
    a single watcher task listens for the client going away and cancels the
    sending task, so an abandoned stream stops reading from the provider at
    once instead of at its next write.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        stream: EventStream,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.chunks = chunks
        self.stream = stream
        self.headers = [
            (b"content-type", media_type.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"finished": False, "disconnected": False}

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not state["finished"]:
                        state["disconnected"] = True
                        task.cancel()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            task.uncancel()
        finally:
            state["finished"] = True
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._close()

    async def _close(self) -> None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await self.stream.aclose()
