"""The canonical chat model's few behaviours."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    ImagePart,
    Message,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCall,
    Usage,
)


def test_message_text_joins_text_parts_only() -> None:
    message = Message(
        role="user", content=[TextPart("look "), ImagePart(url="https://x"), TextPart("here")]
    )
    assert message.text == "look here"
    assert Message(role="assistant").text == ""


def test_message_defaults_are_not_shared() -> None:
    a, b = Message(role="user"), Message(role="user")
    a.content.append(TextPart("x"))
    a.tool_calls.append(ToolCall("c", "f", "{}"))
    assert b.content == []
    assert b.tool_calls == []


def test_request_texts_lists_everything_sent_upstream_system_first() -> None:
    chat = ChatRequest(
        model="m",
        system="sys",
        messages=[
            Message(role="user", content=[TextPart("a"), ImagePart(data="AAAA"), TextPart("b")]),
            Message(role="assistant", tool_calls=[ToolCall("c1", "f", '{"q": "secret"}')]),
            Message(role="tool", content=[TextPart("result")], tool_call_id="c1"),
        ],
    )
    assert chat.texts() == ["sys", "a", "b", '{"q": "secret"}', "result"]
    assert ChatRequest(model="m", messages=[]).texts() == []


def test_usage_total() -> None:
    assert Usage(3, 4).total_tokens == 7
    assert Usage().total_tokens == 0
    assert Usage().estimated is False


def test_response_tool_calls_text() -> None:
    response = ChatResponse(
        model="m", tool_calls=[ToolCall("a", "f", '{"x": 1}'), ToolCall("b", "g", "{}")]
    )
    assert response.tool_calls_text() == '{"x": 1}{}'
    assert ChatResponse(model="m").tool_calls_text() == ""


class Recorder:
    def __init__(self) -> None:
        self.log: list[str] = []

    async def events(
        self, *events: StreamEvent, fail_on_close: bool = False
    ) -> AsyncGenerator[StreamEvent, None]:
        try:
            for event in events:
                yield event
        finally:
            self.log.append("generator closed")
            if fail_on_close:
                raise RuntimeError("close failed")

    def on_close(self) -> None:
        self.log.append("on_close")


async def test_event_stream_iterates_its_events() -> None:
    recorder = Recorder()
    stream = EventStream(
        StreamStart("m", input_tokens=3),
        recorder.events(TextDelta("a"), StreamEnd("stop")),
        recorder.on_close,
    )
    assert stream.start == StreamStart("m", 3)
    assert [e async for e in stream] == [TextDelta("a"), StreamEnd("stop")]
    await stream.aclose()
    assert recorder.log == ["generator closed", "on_close"]


async def test_event_stream_close_without_iterating_runs_on_close() -> None:
    recorder = Recorder()
    stream = EventStream(
        StreamStart("m"),
        recorder.events(TextDelta("a")),
        recorder.on_close,
    )
    await stream.aclose()
    assert recorder.log == ["on_close"]  # the generator never started: nothing to unwind


async def test_event_stream_close_mid_iteration_unwinds_the_generator() -> None:
    recorder = Recorder()
    stream = EventStream(
        StreamStart("m"),
        recorder.events(TextDelta("a"), TextDelta("b")),
        recorder.on_close,
    )
    assert await anext(aiter(stream)) == TextDelta("a")
    await stream.aclose()
    assert recorder.log == ["generator closed", "on_close"]


async def test_event_stream_on_close_runs_even_if_closing_fails() -> None:
    recorder = Recorder()
    stream = EventStream(
        StreamStart("m"),
        recorder.events(TextDelta("a"), fail_on_close=True),
        recorder.on_close,
    )
    await anext(aiter(stream))
    with pytest.raises(RuntimeError):
        await stream.aclose()
    assert recorder.log == ["generator closed", "on_close"]


async def test_event_stream_without_on_close() -> None:
    recorder = Recorder()
    stream = EventStream(StreamStart("m"), recorder.events())
    assert [e async for e in stream] == []
    await stream.aclose()
