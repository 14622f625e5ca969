"""The reusable stream filter: channels see their own text, hold it, release it, or block."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from llm_gateway.chat import (
    EventStream,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
)
from llm_gateway.streams import TEXT, filter_stream


class HoldAll:
    """Releases nothing until the end; blocks when it sees ``stop``."""

    def __init__(self) -> None:
        self.held: list[str] = []

    @property
    def blocked(self) -> bool:
        return "stop" in "".join(self.held)

    def feed(self, text: str) -> str:
        self.held.append(text)
        return ""

    def finish(self) -> str:
        return "".join(self.held).upper()


def _stream(*events: StreamEvent) -> EventStream:
    async def gen() -> AsyncGenerator[StreamEvent, None]:
        for event in events:
            yield event

    return EventStream(StreamStart("m"), gen())


async def _collect(
    stream: EventStream, channels: dict[int, HoldAll], settled: list[int]
) -> list[StreamEvent]:
    def open_channel(index: int) -> HoldAll:
        channels[index] = HoldAll()
        return channels[index]

    events: list[StreamEvent] = []
    # ``settled`` notes how many events had been passed on when it ran.
    async for event in filter_stream(stream, open_channel, lambda: settled.append(len(events))):
        events.append(event)
    return events


async def test_each_channel_is_held_and_released_before_the_final_event() -> None:
    channels: dict[int, HoldAll] = {}
    settled: list[int] = []  # how many events had been passed on at each call
    events = await _collect(
        _stream(
            TextDelta("he"),
            ToolCallDelta(0, '{"a"', id="t1", name="f"),
            TextDelta("llo"),
            ToolCallDelta(0, ": 1}"),
            StreamEnd("tool_calls"),
        ),
        channels,
        settled,
    )
    assert set(channels) == {TEXT, 0}
    assert events[0] == ToolCallDelta(0, "", id="t1", name="f")  # the call's id flows at once
    assert TextDelta("HELLO") in events
    assert ToolCallDelta(0, '{"A": 1}') in events
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].finish_reason == "tool_calls"
    # Settled before the final event was passed on (so the audit row written then has
    # every finding), and again, idempotently, when the stream closed.
    assert settled == [len(events) - 1, len(events)]


async def test_a_blocking_channel_ends_the_stream_as_content_filter() -> None:
    channels: dict[int, HoldAll] = {}
    settled: list[int] = []  # how many events had been passed on at each call
    events = await _collect(
        _stream(TextDelta("please stop"), TextDelta("never seen"), StreamEnd("stop")),
        channels,
        settled,
    )
    assert events == [StreamEnd("content_filter")]
    assert settled == [0, 1]
