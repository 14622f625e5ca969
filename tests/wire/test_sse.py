"""Server-sent events: parsing providers' streams and formatting our own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llm_gateway.wire.sse import SSEvent, parse_sse, sse


async def lines_of(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def parse(lines: list[bytes]) -> list[SSEvent]:
    return [e async for e in parse_sse(lines_of(lines))]


async def test_named_and_unnamed_events() -> None:
    events = await parse([b"event: message_start", b'data: {"a": 1}', b"", b'data: {"b": 2}', b""])
    assert events == [SSEvent("message_start", '{"a": 1}'), SSEvent("message", '{"b": 2}')]


async def test_multi_line_data_is_joined_with_newlines() -> None:
    assert await parse([b"data: one", b"data: two", b"data:three", b""]) == [
        SSEvent("message", "one\ntwo\nthree")
    ]


async def test_only_one_leading_space_is_removed() -> None:
    assert await parse([b"data:  padded ", b""]) == [SSEvent("message", " padded ")]


async def test_comments_unknown_fields_and_empty_dispatches_are_ignored() -> None:
    events = await parse(
        [
            b": keep-alive",
            b"",
            b"id: 7",
            b"retry: 1000",
            b"",
            b"event: ping",
            b"",  # an event with no data is not dispatched ...
            b"data: x",  # ... and its name does not leak into the next one
            b"",
        ]
    )
    assert events == [SSEvent("message", "x")]


async def test_data_without_colon_is_an_empty_field() -> None:
    assert await parse([b"data", b"data: a", b""]) == [SSEvent("message", "\na")]


async def test_event_name_resets_after_dispatch() -> None:
    events = await parse([b"event: a", b"data: 1", b"", b"data: 2", b""])
    assert [e.event for e in events] == ["a", "message"]


async def test_stream_cut_before_final_blank_line_still_delivers() -> None:
    assert await parse([b"event: x", b"data: last"]) == [SSEvent("x", "last")]


async def test_invalid_utf8_is_replaced_not_raised() -> None:
    [event] = await parse([b"data: caf\xe9", b""])
    assert event.data == "caf\ufffd"


async def test_non_ascii_data() -> None:
    [event] = await parse(["data: héllo 世界 🚀".encode(), b""])
    assert event.data == "héllo 世界 🚀"


@pytest.mark.parametrize(
    ("data", "event", "expected"),
    [
        (b'{"a":1}', None, b'data: {"a":1}\n\n'),
        (b'{"type":"ping"}', "ping", b'event: ping\ndata: {"type":"ping"}\n\n'),
    ],
)
def test_format(data: bytes, event: str | None, expected: bytes) -> None:
    assert sse(data, event) == expected


async def test_format_then_parse_round_trip() -> None:
    wire = sse(b'{"x": "y"}', "content_block_delta") + sse(b"[DONE]")
    lines = wire.split(b"\n")
    assert await parse(lines) == [
        SSEvent("content_block_delta", '{"x": "y"}'),
        SSEvent("message", "[DONE]"),
    ]
