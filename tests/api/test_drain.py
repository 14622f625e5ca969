"""A stream the server's shutdown must end gets the format's error event, once the grace
is nearly spent; a stream that ends first is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from llm_gateway.api.http import StreamResponse
from llm_gateway.chat import EventStream, StreamEvent, StreamStart
from llm_gateway.errors import GatewayError
from llm_gateway.shutdown import Drain


async def _never_ending() -> AsyncGenerator[StreamEvent, None]:
    await asyncio.Event().wait()
    yield  # type: ignore[misc]  # pragma: no cover


async def _chunks() -> AsyncGenerator[bytes, None]:
    yield b"data: first\n\n"
    await asyncio.Event().wait()  # an upstream that never finishes


def _stream() -> EventStream:
    return EventStream(StreamStart("m", None), _never_ending())


async def test_a_stream_still_running_at_the_cut_ends_with_the_error_event() -> None:
    drain = Drain(grace_s=0.1)
    cut: list[GatewayError] = []

    def ending(error: GatewayError) -> bytes:
        cut.append(error)
        return b"data: the end\n\n"

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if message.get("body") == b"data: first\n\n":
            drain.begin()

    async def receive() -> Any:
        await asyncio.Event().wait()

    response = StreamResponse(_chunks(), _stream(), "text/event-stream", drain=drain, cut=ending)
    await response({"type": "http"}, receive, send)
    bodies = [m.get("body") for m in sent if m["type"] == "http.response.body"]
    assert bodies == [b"data: first\n\n", b"data: the end\n\n", b""]
    [error] = cut
    assert error.code == "server_shutdown"


async def test_before_the_shutdown_begins_nothing_is_cut() -> None:
    drain = Drain(grace_s=0.0)
    waiting = asyncio.ensure_future(drain.cut_at())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # only a shutdown starts the countdown
    drain.begin()
    await waiting  # and then it returns
