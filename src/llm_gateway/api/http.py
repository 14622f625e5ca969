"""Small ASGI pieces the front doors share: request ids, bounded bodies, streamed answers."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from llm_gateway.chat import EventStream
from llm_gateway.errors import (
    BodyTooLarge,
    ClientClosedRequest,
    GatewayError,
    InvalidRequest,
    RequestTimeout,
    ServerShutdown,
    UnsupportedMediaType,
)
from llm_gateway.pipeline.context import new_request_id
from llm_gateway.settings.server import Network
from llm_gateway.shutdown import Drain

REQUEST_ID_HEADER = b"x-request-id"
#: The longest Retry-After the official SDKs wait out; beyond it they would retry at once.
_LONGEST_SDK_WAIT_S = 60
#: The scope extension the server sets when it closed a connection whose body stalled.
READ_TIMEOUT = "llm_gateway.read_timeout"


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
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``error`` in a front door's format (``render``), with the headers its status calls for."""
    headers = dict(headers or {})
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(error.retry_after * 1000)))
        if error.retry_after > _LONGEST_SDK_WAIT_S:  # a month's budget: retrying cannot help
            headers["x-should-retry"] = "false"
    if error.status == 401:
        headers["www-authenticate"] = "Bearer"
    return Response(
        orjson.dumps(render(error, request_id)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def client_ip(request: Request, trusted: Sequence[Network] = ()) -> str | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not one (so a client cannot choose its own)."""
    peer = request.client.host if request.client else None
    if peer is None or not trusted or not _within(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a malformed hop: trust nothing beyond it
        client = hop
        if not _within(hop, trusted):
            break
    return client


def from_proxy(request: Request, trusted: Sequence[Network]) -> bool:
    """Whether the peer is a trusted proxy, whose headers about the client may be believed."""
    peer = request.client.host if request.client else None
    return peer is not None and bool(trusted) and _within(peer, trusted)


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all.

    A body must be JSON: a ``Content-Type`` other than ``application/json`` (with
    parameters, UTF-8 if a charset is named) is refused with 415, as the
    providers' own APIs do, rather than parsed as JSON regardless.
    """
    check_json_content_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("the Content-Length header is not a number") from None
        if size > limit:
            raise _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except ClientDisconnect:
        if READ_TIMEOUT in request.scope.get("extensions", {}):
            raise RequestTimeout("the request body stopped arriving") from None
        raise ClientClosedRequest("the client closed the connection during the upload") from None
    return bytes(body)


def check_json_content_type(content_type: str | None) -> None:
    """Refuse (415) a declared media type other than JSON; no header at all is accepted."""
    if content_type is None or content_type == "application/json":
        return
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type != "application/json":
        raise UnsupportedMediaType(
            "the request body must be JSON: send Content-Type: application/json"
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("the request body must be UTF-8 JSON (charset=utf-8)")


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
        drain: Drain | None = None,
        cut: Callable[[GatewayError], bytes] | None = None,
    ) -> None:
        self.chunks = chunks
        self.stream = stream
        self.drain = drain
        self.cut = cut  # the format's last event for a stream the shutdown ends
        self.headers = [
            (b"content-type", media_type.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"finished": False, "disconnected": False, "cut": False}
        watchers = self._watch(task, receive, state)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (state["disconnected"] or state["cut"]):
                raise
            task.uncancel()
            if state["cut"]:
                await self._cut_short(send)
        finally:
            state["finished"] = True
            for watcher in watchers:
                watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._close()

    def _watch(
        self, task: asyncio.Task[Any], receive: Receive, state: dict[str, bool]
    ) -> list[asyncio.Task[None]]:
        """Tasks that cancel the sending ``task``: when the client goes away, and when the
        server's shutdown must end the stream (``state`` says which)."""

        async def disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not state["finished"]:
                        state["disconnected"] = True
                        task.cancel()
                    return

        async def shutdown(drain: Drain) -> None:
            await drain.cut_at()
            if not state["finished"]:
                state["cut"] = True
                task.cancel()

        watchers = [asyncio.create_task(disconnect())]
        if self.drain is not None and self.cut is not None:
            watchers.append(asyncio.create_task(shutdown(self.drain)))
        return watchers

    async def _cut_short(self, send: Send) -> None:
        """End a stream the shutdown cuts with the format's error event."""
        assert self.cut is not None
        error = ServerShutdown("the server is shutting down; ask again")
        await send({"type": "http.response.body", "body": self.cut(error), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _close(self) -> None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await self.stream.aclose()
