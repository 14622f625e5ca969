"""A reusable filter over a streamed answer's text: hold, rewrite or stop what flows.

A streamed answer carries text on channels: the answer's text (channel -1) and
each tool call's arguments (channel n for tool call n). A response-side stage
that must see text before the caller does (DLP's scan and restore today;
confirmations, which hold a tool call until it is complete and decided, and
grounding to come) gives :func:`filter_stream` a factory of :class:`Channel`
objects and gets back a stream of what each channel released. The plumbing is
the same for all of them, so it lives here once: which event belongs to which
channel, flushing every channel before the final event, ending the stream as
``content_filter`` when a channel blocks, and a callback that runs exactly
when the filter's findings are complete (before the final event is passed on,
so that the audit row written then already holds them).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from llm_gateway.chat import (
    ChatResponse,
    EventStream,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)

TEXT = -1  # the channel of the answer's text; tool call n's arguments are channel n


class Channel(Protocol):
    """One channel's filter: what it releases of each piece, and of what it still holds."""

    @property
    def blocked(self) -> bool:
        """True once nothing more may flow: the stream ends as ``content_filter``."""
        ...

    def feed(self, text: str) -> str:
        """Take the next piece; return what may be released now (possibly nothing)."""
        ...

    def finish(self) -> str:
        """The stream is ending: return everything still held that may be released."""
        ...


async def filter_stream(
    stream: EventStream,
    open_channel: Callable[[int], Channel],
    settled: Callable[[], None] = lambda: None,
) -> AsyncGenerator[StreamEvent, None]:
    """``stream``'s events with each channel's text passed through its filter.

    ``open_channel(index)`` is called once per channel, on its first piece.
    ``settled`` is called before the final event is yielded, and again when the
    stream ends any other way (the caller went away, the upstream failed), so
    it must be idempotent.
    """
    channels: dict[int, Channel] = {}

    def channel(index: int) -> Channel:
        if index not in channels:
            channels[index] = open_channel(index)
        return channels[index]

    try:
        async for event in stream:
            if isinstance(event, StreamEnd):
                for rest in _rests(channels):
                    yield rest
                if _blocked(channels):
                    event.finish_reason = "content_filter"
                settled()
                yield event
                return
            passed = _through(event, channel)
            if passed is not None:
                yield passed
            if _blocked(channels):
                settled()
                yield StreamEnd("content_filter")
                return
    finally:
        settled()
        await stream.aclose()


def _through(event: StreamEvent, channel: Callable[[int], Channel]) -> StreamEvent | None:
    """``event`` with its text filtered by its channel; None if nothing of it may flow yet."""
    if isinstance(event, TextDelta):
        text = channel(TEXT).feed(event.text)
        return TextDelta(text) if text else None
    if isinstance(event, ToolCallDelta):
        event.arguments = channel(event.index).feed(event.arguments)
        return event if event.arguments or event.id or event.name else None
    return event


def _rests(channels: dict[int, Channel]) -> list[StreamEvent]:
    """What each channel still holds and may release, as the stream ends."""
    rests: list[StreamEvent] = []
    for index, open_one in channels.items():
        rest = open_one.finish()
        if rest and not open_one.blocked:
            rests.append(
                TextDelta(rest) if index == TEXT else ToolCallDelta(index=index, arguments=rest)
            )
    return rests


def _blocked(channels: dict[int, Channel]) -> bool:
    return any(c.blocked for c in channels.values())


def as_stream(answer: ChatResponse) -> EventStream:
    """A whole answer as a stream: its text in one delta, its tool calls, its end."""

    async def events() -> AsyncGenerator[StreamEvent, None]:
        if answer.text:
            yield TextDelta(answer.text)
        for i, call in enumerate(answer.tool_calls):
            yield ToolCallDelta(i, call.arguments, call.id, call.name)
        yield StreamEnd(answer.finish_reason, answer.usage)

    return EventStream(StreamStart(answer.model, None), events())


async def collect(stream: EventStream) -> ChatResponse:
    """A stream read to its end as one answer (its tool calls assembled from their deltas).

    The stream is closed whatever happens; an error mid-stream propagates.
    """
    text: list[str] = []
    calls: dict[int, list[str]] = {}
    heads: dict[int, tuple[str, str]] = {}
    answer = ChatResponse(model=stream.start.model)
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                calls.setdefault(event.index, []).append(event.arguments)
                if event.id is not None or event.name is not None:
                    known = heads.get(event.index, ("", ""))
                    heads[event.index] = (event.id or known[0], event.name or known[1])
            elif isinstance(event, StreamEnd):
                answer.finish_reason, answer.usage = event.finish_reason, event.usage
    finally:
        await stream.aclose()
    answer.text = "".join(text)
    answer.tool_calls = [
        ToolCall(heads.get(i, ("", ""))[0], heads.get(i, ("", ""))[1], "".join(parts))
        for i, parts in sorted(calls.items())
    ]
    if answer.usage is not None and not answer.usage.input_tokens and stream.start.input_tokens:
        answer.usage.input_tokens = stream.start.input_tokens
    return answer
