"""The HTTP server's limits, on a real uvicorn server with the guarded protocol.

An in-process server on a free port serves a small ASGI app; raw sockets play
the misbehaving clients. Every wait on the server is bounded (a test must
never hang), but no test asserts how fast the server was: only what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import uvicorn

from llm_gateway.api.http import READ_TIMEOUT
from llm_gateway.server import HttpLimits, ServerConfig

WAIT = 20.0  # the longest any read waits for the server: a bound against hanging, not a timing


class App:
    """Echoes the size of the body it read, and remembers how each request ended."""

    def __init__(self) -> None:
        self.ended: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.ended.append({"disconnect": True, "extensions": scope.get("extensions", {})})
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.ended.append({"size": size, "headers": len(scope["headers"])})
        body = orjson.dumps({"size": size})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running(limits: HttpLimits) -> AsyncIterator[tuple[int, App]]:
    app = App()
    port = free_port()
    config = ServerConfig(
        app, limits=limits, host="127.0.0.1", port=port, lifespan="off", log_config=None,
        access_log=False, timeout_keep_alive=30,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        assert not task.done(), "the server did not start"
    try:
        yield port, app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status of the next response and everything until the server closed or paused."""
    data = await asyncio.wait_for(reader.read(65_536), WAIT)
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1") else 0
    return status, data


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (bounded by WAIT)."""
    return await asyncio.wait_for(reader.read(), WAIT)


def request(body: bytes = b"", /, **headers: str) -> bytes:
    lines = [b"POST /x HTTP/1.1", b"host: t", b"content-length: " + str(len(body)).encode()]
    lines += [f"{k.replace('_', '-')}: {v}".encode() for k, v in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_a_normal_request_and_a_second_on_the_same_connection() -> None:
    async with running(HttpLimits(max_headers=5)) as (port, _):
        reader, writer = await connect(port)
        for _ in range(2):  # the header count starts again for each request
            writer.write(request(b"hello", a="1", b="2"))
            status, data = await answer(reader)
            assert status == 200
            assert data.endswith(b'{"size":5}')
        writer.close()


async def test_a_head_larger_than_the_limit_is_refused_without_being_read() -> None:
    async with running(HttpLimits(max_header_bytes=8_192)) as (port, app):
        reader, writer = await connect(port)
        writer.write(b"POST /x HTTP/1.1\r\nhost: t\r\nx-big: ")
        for _ in range(64):  # 4 MiB of one header value, sent in pieces
            writer.write(b"a" * 65_536)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            if reader.at_eof() or writer.is_closing():
                break
        data = await closed(reader)
        assert data.startswith(b"HTTP/1.1 431")
        error = orjson.loads(data.split(b"\r\n\r\n", 1)[1])["error"]
        assert error["code"] == "headers_too_large"
        assert app.ended == []  # the app never saw it


async def test_a_head_within_the_limit_with_its_body_in_the_same_packet_is_served() -> None:
    async with running(HttpLimits(max_header_bytes=200)) as (port, _):
        reader, writer = await connect(port)
        writer.write(request(b"x" * 5000))  # head < 200 bytes, body far beyond it
        status, data = await answer(reader)
        while b'{"size"' not in data:
            data += await asyncio.wait_for(reader.read(65_536), WAIT)
        assert status == 200
        assert data.endswith(b'{"size":5000}')


async def test_too_many_headers_are_refused() -> None:
    async with running(HttpLimits(max_headers=10)) as (port, app):
        reader, writer = await connect(port)
        writer.write(request(**{f"h{i}": "v" for i in range(50)}))
        data = await closed(reader)
        assert data.startswith(b"HTTP/1.1 431")
        assert b"too_many_headers" in data
        assert app.ended == []


@pytest.mark.parametrize("sent", [b"", b"POST /x HT", b"POST /x HTTP/1.1\r\nhost: t\r\n"])
async def test_a_head_that_does_not_arrive_in_time_is_closed(sent: bytes) -> None:
    async with running(HttpLimits(header_timeout_s=0.3)) as (port, app):
        reader, writer = await connect(port)
        writer.write(sent)
        data = await closed(reader)
        assert data.startswith(b"HTTP/1.1 408")
        assert b"request_timeout" in data
        assert app.ended == []


async def test_a_stalled_body_is_closed_and_the_app_told_why() -> None:
    async with running(HttpLimits(body_timeout_s=0.3)) as (port, app):
        reader, writer = await connect(port)
        writer.write(request(b"x" * 100)[:-90])  # the head and 10 bytes of a 100-byte body
        await closed(reader)
        for _ in range(100):
            if app.ended:
                break
            await asyncio.sleep(0.05)
        (ended,) = app.ended
        assert ended["disconnect"]
        assert READ_TIMEOUT in ended["extensions"]


async def test_a_client_may_hold_only_so_many_connections() -> None:
    async with running(HttpLimits(max_connections_per_client=3)) as (port, _):
        held = [await connect(port) for _ in range(3)]
        reader, _writer = await connect(port)
        data = await closed(reader)
        assert data.startswith(b"HTTP/1.1 503")
        assert b"too_many_connections" in data
        # The ones it holds still work, and a closed one frees its place.
        held[0][1].write(request(b"ok"))
        assert (await answer(held[0][0]))[0] == 200
        held[1][1].close()
        await asyncio.sleep(0.1)
        reader, writer = await connect(port)
        writer.write(request(b"ok"))
        assert (await answer(reader))[0] == 200


async def test_limits_of_zero_are_off() -> None:
    limits = HttpLimits(0, 0, 0, 0, 0)
    async with running(limits) as (port, _):
        reader, writer = await connect(port)
        writer.write(request(b"hi", x_big="a" * 200_000, **{f"h{i}": "v" for i in range(150)}))
        status, _ = await answer(reader)
        assert status == 200
