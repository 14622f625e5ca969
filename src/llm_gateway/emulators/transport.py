"""How an emulated answer reaches the wire: timing, streaming, and deliberate breakage.

The three wire formats differ in spelling only; the failure modes a gateway
must survive (a slow first byte, a server that never answers, a stream cut
mid-way, a body that is not JSON) are the same for all of them. So each
provider module renders its answer into a :class:`Delivery` (status, headers,
and either a whole body or a list of :class:`Frame`), and
:class:`DeliveryResponse` plays it out with the requested latency, chunk
delays and truncation, while watching for the client leaving and the server
stopping so that no wait outlives either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llm_gateway.emulators.behaviour import Directive
from llm_gateway.emulators.state import EmulatorState

logger = logging.getLogger(__name__)

#: How long ``hang`` waits: effectively forever, but a bounded task.
HANG_SECONDS = 3600.0

FrameKind = Literal["meta", "content", "end"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One piece of a stream.

    ``content`` frames carry model output (text or tool-argument deltas): they
    are what ``truncate_after`` counts and what ``chunk_delay_ms`` spaces out.
    ``end`` frames are the terminal events, the ones a truncated stream lacks.
    """

    data: bytes
    kind: FrameKind = "meta"


@dataclass(slots=True)
class Delivery:
    """Everything needed to send one answer; built by a provider module."""

    status: int = 200
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    frames: list[Frame] | None = None
    latency_s: float = 0.0
    hang: bool = False
    chunk_delay_s: float = 0.0
    truncate_after: int | None = None
    #: What to send if the server stops before the headers went out.
    unavailable: tuple[int, bytes] = (503, b'{"error": "emulator shutting down"}')


def timed_delivery(directive: Directive, default_latency_ms: float, **fields: Any) -> Delivery:
    """A :class:`Delivery` carrying the directive's timing and truncation settings."""
    return Delivery(
        latency_s=directive.latency_s(default_latency_ms),
        hang=directive.hang,
        chunk_delay_s=directive.chunk_delay_ms / 1000.0,
        truncate_after=directive.truncate_after,
        **fields,
    )


def failure_delivery(
    directive: Directive,
    status: int,
    payload: Any,
    *,
    default_latency_ms: float,
    headers: Mapping[str, str] | None = None,
) -> Delivery:
    """An HTTP error answer asked for by ``status``; ``error_body`` replaces the payload verbatim.

    Latency and ``hang`` still apply (a slow 429 is realistic); truncation and
    malformed bodies do not, since an error body is already the failure.
    """
    all_headers = {**dict(headers or {}), **retry_after_header(directive.retry_after)}
    if directive.error_body is not None:
        raw = directive.error_body.encode()
        try:
            orjson.loads(raw)
            media_type = "application/json"
        except orjson.JSONDecodeError:
            media_type = "text/plain; charset=utf-8"
        body = raw
    else:
        body, media_type = dumps(payload), "application/json"
    return Delivery(
        status=status,
        media_type=media_type,
        headers=all_headers,
        body=body,
        latency_s=directive.latency_s(default_latency_ms),
        hang=directive.hang,
    )


def malformed_body(body: bytes) -> bytes:
    """A JSON body cut in half: well-framed HTTP whose payload is not JSON."""
    return body[: max(len(body) // 2, 1)]


def json_type_name(value: object) -> str:
    """JSON's name for a value's type, as providers spell it in validation errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class InvalidRequest(Exception):
    """A request the real provider would reject; each format renders it in its own shape."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def dumps(payload: Any) -> bytes:
    """Serialise JSON the way every emulated route does (orjson: fast, compact, UTF-8)."""
    return orjson.dumps(payload)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A plain, immediate JSON answer (auth and validation errors, listings)."""
    return Response(dumps(payload), status, dict(headers or {}), "application/json")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body, raising :class:`InvalidRequest` unless it is a JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_type")
    return value


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """The ``retry-after`` header for a directive's ``retry_after`` (whole seconds if integral)."""
    if seconds is None:
        return {}
    return {"retry-after": str(int(seconds)) if float(seconds).is_integer() else str(seconds)}


class DeliveryResponse(Response):
    """A Starlette response that plays a :class:`Delivery` out over raw ASGI messages.

    Raw ASGI is needed because the deliberate failures are not expressible with
    Starlette's ready-made responses: a truncated answer must end the ASGI call
    without the final ``more_body=False`` message (uvicorn then drops the
    connection, logging "returned without completing response"), and waits
    must race the client's disconnect and the server's shutdown.
    """

    def __init__(self, delivery: Delivery, state: EmulatorState) -> None:
        super().__init__(status_code=delivery.status, media_type=delivery.media_type)
        self.delivery = delivery
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the delivery; every wait ends early if the client leaves or the server stops."""
        stop = self.state.stop_signal()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, stop))
        try:
            await self._play(send, stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.state.release(stop)

    def _head(self, length: int | None) -> list[tuple[bytes, bytes]]:
        headers = {"content-type": self.delivery.media_type, **self.delivery.headers}
        if length is not None:
            headers["content-length"] = str(length)
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def _play(self, send: Send, stop: asyncio.Future[str]) -> None:
        d = self.delivery
        waited = await _pause(stop, HANG_SECONDS if d.hang else 0.0)
        if waited:
            waited = await _pause(stop, d.latency_s)
        if not waited:
            if stop.result() == "closing":
                status, body = d.unavailable
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            return  # the client left: nobody to answer
        if d.frames is None:
            await self._send_body(send, d.body or b"")
        else:
            await self._send_frames(send, stop, d.frames)

    async def _send_body(self, send: Send, body: bytes) -> None:
        d = self.delivery
        start = {
            "type": "http.response.start",
            "status": d.status,
            "headers": self._head(len(body)),
        }
        await send(start)
        if d.truncate_after is None:
            await send({"type": "http.response.body", "body": body})
            return
        # Headers promise the whole body; send half and end the call, so the
        # client sees the connection drop short of Content-Length.
        logger.info("emulator: truncating a response body on purpose")
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )

    async def _send_frames(
        self, send: Send, stop: asyncio.Future[str], frames: list[Frame]
    ) -> None:
        d = self.delivery
        await send({"type": "http.response.start", "status": d.status, "headers": self._head(None)})
        sent_content = 0
        ended = False
        for frame in frames:
            if d.truncate_after is not None and (
                frame.kind == "end"
                or (frame.kind == "content" and sent_content >= d.truncate_after)
            ):
                logger.info("emulator: cutting a stream on purpose after %d chunks", sent_content)
                return  # no final message: uvicorn closes the connection mid-stream
            spaced = frame.kind == "content" or (frame.kind == "end" and not ended)
            delayed = d.chunk_delay_s > 0 and spaced and sent_content > 0
            if delayed and not await _pause(stop, d.chunk_delay_s):
                break
            if frame.kind == "content":
                sent_content += 1
            ended = ended or frame.kind == "end"
            await send({"type": "http.response.body", "body": frame.data, "more_body": True})
        if stop.done() and stop.result() == "disconnect":
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _pause(stop: asyncio.Future[str], seconds: float) -> bool:
    """Wait ``seconds``; False if the client left or the server is stopping first."""
    if stop.done():
        return False
    if seconds <= 0:
        return True
    try:
        await asyncio.wait_for(asyncio.shield(stop), seconds)
    except TimeoutError:
        return True
    return False


async def _watch_disconnect(receive: Receive, stop: asyncio.Future[str]) -> None:
    """Resolve ``stop`` with "disconnect" when the ASGI server reports the client gone.

    The body was already read by the route, so the next ``http.disconnect`` is
    either the client leaving or the response completing; in the latter case
    nobody is waiting any more, so the distinction does not matter.
    """
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not stop.done():
                stop.set_result("disconnect")
            return


_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def random_id(prefix: str, length: int, alphabet: str = _ALPHANUMERIC) -> str:
    """An id in a provider's style (``chatcmpl-...``, ``msg_...``, ``toolu_...``)."""
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))
