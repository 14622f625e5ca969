"""The real aiohttp transport against a tiny HTTP/1.1 server started in the test."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from llm_gateway.errors import (
    UpstreamStreamInterrupted,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from llm_gateway.transport import AiohttpTransport, UpstreamRequest, UpstreamResponse

Handler = Callable[[asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection


class Server:
    """Answers each request with ``handler``; counts the connections it accepted."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if not await self.handler(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def request(url: str, timeout_s: float = 5.0, pool: str = "dep") -> UpstreamRequest:
    return UpstreamRequest(
        url=url,
        headers={"content-type": "application/json", "x-test": "1"},
        body=b'{"hello": "world"}',
        pool=pool,
        max_connections=4,
        read_timeout_s=timeout_s,
    )


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport()
    try:
        yield t
    finally:
        await t.close()


def json_answer(body: bytes, status: str = "200 OK") -> Handler:
    async def handler(writer: asyncio.StreamWriter) -> bool:
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return True

    return handler


def chunked(*pieces: bytes, pause_s: float = 0.01, end: bool = True) -> Handler:
    """A chunked body, each piece flushed separately so that it arrives as its own read."""

    async def handler(writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        for piece in pieces:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(pause_s)
        if not end:
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    return handler


async def read_lines(response: UpstreamResponse, into: list[bytes]) -> None:
    async for line in response.lines():
        into.append(line)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- basics ---------------------------------------------------------------------------------


async def test_sends_the_request_and_reads_the_answer(transport: AiohttpTransport) -> None:
    async with Server(json_answer(b'{"ok": true}')) as server:
        response = await transport.send(request(server.url))
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert await response.read() == b'{"ok": true}'
    [(head, body)] = server.requests
    assert head.startswith(b"POST /v1/chat HTTP/1.1\r\n")
    assert b"x-test: 1" in head.lower()
    assert body == b'{"hello": "world"}'


async def test_error_status_is_returned_not_raised(transport: AiohttpTransport) -> None:
    async with Server(json_answer(b'{"error": "slow down"}', "429 Too Many Requests")) as server:
        response = await transport.send(request(server.url))
        assert response.status == 429
        assert await response.read() == b'{"error": "slow down"}'


async def test_connection_refused_is_unreachable(transport: AiohttpTransport) -> None:
    with pytest.raises(UpstreamUnreachable):
        await transport.send(request(f"http://127.0.0.1:{_free_port()}/v1/chat"))


# --- lines() ---------------------------------------------------------------------------------


async def test_lines_split_across_chunk_boundaries(transport: AiohttpTransport) -> None:
    pieces = [
        b"data: hel",
        b"lo\n\ndata: wor",
        b"ld\n",
        b"\ndata: one\ndata: two\n\n",
        b"event: x\ndata: no final newline",
    ]
    async with Server(chunked(*pieces)) as server:
        response = await transport.send(request(server.url))
        lines = [line async for line in response.lines()]
    assert lines == [
        b"data: hello",
        b"",
        b"data: world",
        b"",
        b"data: one",
        b"data: two",
        b"",
        b"event: x",
        b"data: no final newline",
    ]


async def test_lines_with_crlf_endings_split_between_cr_and_lf(
    transport: AiohttpTransport,
) -> None:
    pieces = [b'{"a": 1}\r', b'\n{"b": 2}\r\n\r', b"\n", b'{"c": 3}\r\n']
    async with Server(chunked(*pieces)) as server:
        response = await transport.send(request(server.url))
        lines = [line async for line in response.lines()]
    assert lines == [b'{"a": 1}', b'{"b": 2}', b"", b'{"c": 3}']


async def test_lines_of_a_large_line_in_many_chunks(transport: AiohttpTransport) -> None:
    payload = b"x" * 200_000
    pieces = [payload[i : i + 16_384] for i in range(0, len(payload), 16_384)]
    async with Server(chunked(*pieces, b"\nend\n", pause_s=0)) as server:
        response = await transport.send(request(server.url))
        lines = [line async for line in response.lines()]
    assert lines == [payload, b"end"]


# --- failures mid-body -------------------------------------------------------------------------


async def test_server_closing_mid_body_interrupts_read(transport: AiohttpTransport) -> None:
    async def handler(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"partial": ')
        await writer.drain()
        return False  # close with 88 bytes missing

    async with Server(handler) as server:
        response = await transport.send(request(server.url))
        with pytest.raises(UpstreamStreamInterrupted):
            await response.read()


async def test_server_closing_mid_stream_interrupts_lines(transport: AiohttpTransport) -> None:
    async with Server(chunked(b"data: a\n\n", b"data: b", end=False)) as server:
        response = await transport.send(request(server.url))
        received: list[bytes] = []
        with pytest.raises(UpstreamStreamInterrupted):
            await read_lines(response, received)
    assert received[:2] == [b"data: a", b""]


async def test_server_silent_mid_stream_is_a_timeout(transport: AiohttpTransport) -> None:
    async def handler(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n")
        await writer.drain()
        await asyncio.sleep(10)  # goes silent; cancelled when the server stops
        return False

    async with Server(handler) as server:
        response = await transport.send(request(server.url, timeout_s=0.2))
        received: list[bytes] = []
        with pytest.raises(UpstreamTimeout):
            await read_lines(response, received)
    assert received == [b"data: a", b""]


async def test_server_silent_before_headers_is_a_timeout(transport: AiohttpTransport) -> None:
    async def handler(writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(10)
        return False

    async with Server(handler) as server:
        with pytest.raises(UpstreamTimeout):
            await transport.send(request(server.url, timeout_s=0.2))


# --- connection reuse ------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(transport: AiohttpTransport) -> None:
    async with Server(json_answer(b'{"n": 1}')) as server:
        for _ in range(5):
            response = await transport.send(request(server.url))
            assert await response.read() == b'{"n": 1}'
        async with Server(chunked(b"data: x\n\n")) as stream_server:
            for _ in range(3):
                response = await transport.send(request(stream_server.url, pool="other"))
                assert [line async for line in response.lines()] == [b"data: x", b""]
    assert server.connections == 1
    assert len(server.requests) == 5
    assert stream_server.connections == 1
    assert len(stream_server.requests) == 3


async def test_error_answers_also_reuse_the_connection(transport: AiohttpTransport) -> None:
    async with Server(json_answer(b'{"error": "bad"}', "400 Bad Request")) as server:
        for _ in range(3):
            response = await transport.send(request(server.url))
            assert response.status == 400
            await response.read()
    assert server.connections == 1


async def test_abandoned_stream_does_not_return_its_connection(
    transport: AiohttpTransport,
) -> None:
    async with Server(chunked(b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n")) as server:
        for _ in range(2):
            response = await transport.send(request(server.url))
            lines = cast(AsyncGenerator[bytes, None], response.lines())  # aiohttp's is one
            assert await anext(lines) == b"data: 1"
            await lines.aclose()  # the client went away mid-stream
            response.close()
        response = await transport.send(request(server.url))
        assert len([line async for line in response.lines()]) == 6
    assert server.connections >= 2  # the half-read connections were dropped, not reused
