"""The gateway's own front door (``POST /api/v1/chat``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llm_gateway.api import native as door
from llm_gateway.auth import Credentials
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    Usage,
)
from llm_gateway.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamStreamInterrupted,
    UpstreamTimeout,
)
from llm_gateway.pipeline.context import ChatCall, RequestContext

USER = {"role": "user", "content": "hi"}


def parse(data: dict[str, Any]) -> ChatRequest:
    return door.parse_request(orjson.dumps(data))


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [USER], **fields}


async def _no_body() -> bytes:
    return b""


def make_ctx(usage: Usage | None = None, cost: float = 0.0) -> RequestContext:
    ctx = RequestContext(
        endpoint="native",
        credentials=Credentials(),
        read_body=_no_body,
        payload=ChatCall(door.parse_request),
        request_id="req123",
    )
    ctx.usage = usage
    ctx.cost_usd = cost
    return ctx


def stream_of(*events: StreamEvent, error: GatewayError | None = None) -> EventStream:
    async def gen() -> AsyncIterator[StreamEvent]:
        for event in events:
            yield event
        if error is not None:
            raise error

    return EventStream(StreamStart("gpt-test"), gen())  # type: ignore[arg-type]


async def sse_events(ctx: RequestContext, stream: EventStream) -> list[tuple[str, Any]]:
    out = []
    async for chunk in door.encode_stream(ctx, stream):
        assert chunk.endswith(b"\n\n")
        event_line, data_line = chunk[:-2].decode().split("\n")
        out.append((event_line.removeprefix("event: "), json.loads(data_line[len("data: ") :])))
    return out


# --- parse_request -----------------------------------------------------------------


def test_full_request() -> None:
    chat = parse(
        body(
            messages=[
                {"role": "system", "content": "Be terse."},
                USER,
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": "No emoji."},
                {"role": "user", "content": "again"},
            ],
            max_tokens=100,
            temperature=1.2,
            stream=True,
        )
    )
    assert chat.model == "gpt-test"
    assert chat.system == "Be terse.\n\nNo emoji."
    assert chat.messages == [
        Message(role="user", content=[TextPart("hi")]),
        Message(role="assistant", content=[TextPart("hello")]),
        Message(role="user", content=[TextPart("again")]),
    ]
    assert chat.max_tokens == 100
    assert chat.temperature == 1.2
    assert chat.stream is True


def test_minimal_request_defaults() -> None:
    chat = parse(body())
    assert chat.system is None
    assert chat.max_tokens is None
    assert chat.temperature is None
    assert chat.stream is False
    assert chat.tools == []


REJECTIONS: list[tuple[str, Any, str, str | None]] = [
    ("no-model", {"messages": [USER]}, "missing_field", "model"),
    ("no-messages", {"model": "m"}, "missing_field", "messages"),
    ("messages-empty", body(messages=[]), "empty_messages", "messages"),
    ("only-system", body(messages=[{"role": "system", "content": "x"}]), "empty_messages",
     "messages"),
    ("message-not-object", body(messages=["hi"]), "invalid_field", "messages[0]"),
    ("role-tool", body(messages=[{"role": "tool", "content": "x"}]), "invalid_role",
     "messages[0].role"),
    ("role-developer", body(messages=[USER, {"role": "developer", "content": "x"}]),
     "invalid_role", "messages[1].role"),
    ("content-parts", body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
     "invalid_field", "messages[0].content"),
    ("content-missing", body(messages=[{"role": "user"}]), "invalid_field",
     "messages[0].content"),
    ("max-tokens-0", body(max_tokens=0), "invalid_field", "max_tokens"),
    ("temperature-high", body(temperature=2.1), "invalid_field", "temperature"),
    ("stream-string", body(stream="yes"), "invalid_field", "stream"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "code", "param"),
    [pytest.param(data, code, param, id=name) for name, data, code, param in REJECTIONS],
)
def test_rejections(data: Any, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(data)
    assert (info.value.code, info.value.param) == (code, param)


def test_rejects_bad_json() -> None:
    with pytest.raises(InvalidRequest) as info:
        door.parse_request(b"{nope")
    assert info.value.code == "invalid_json"


# --- encode_response / encode_stream ---------------------------------------------------


def test_encode_response() -> None:
    ctx = make_ctx(Usage(10, 5), cost=0.000123456789)
    data = json.loads(door.encode_response(ctx, ChatResponse(model="gpt-test", text="Hello!")))
    assert data == {
        "model": "gpt-test",
        "response": "Hello!",
        "metadata": {
            "tokens_used": 15,
            "cost": 0.00012346,
            "pii_detected": False,
            "pii_entities": [],
            "request_id": "req123",
        },
    }


def test_encode_response_without_usage() -> None:
    data = json.loads(door.encode_response(make_ctx(), ChatResponse(model="m", text="")))
    assert data["response"] == ""
    assert data["metadata"]["tokens_used"] == 0
    assert data["metadata"]["cost"] == 0


async def test_encode_stream() -> None:
    ctx = make_ctx(Usage(3, 2), cost=0.5)
    events = await sse_events(
        ctx,
        stream_of(
            TextDelta("Hel"),
            ToolCallDelta(0, "{}", id="c", name="f"),  # not representable here: skipped
            TextDelta("lo"),
            StreamEnd("stop", Usage(3, 2)),
        ),
    )
    assert events == [
        ("delta", {"text": "Hel"}),
        ("delta", {"text": "lo"}),
        (
            "done",
            {
                "model": "gpt-test",
                "metadata": {
                    "tokens_used": 5,
                    "cost": 0.5,
                    "pii_detected": False,
                    "pii_entities": [],
                    "request_id": "req123",
                },
            },
        ),
    ]


async def test_encode_stream_error() -> None:
    events = await sse_events(
        make_ctx(), stream_of(TextDelta("part"), error=UpstreamTimeout("too slow"))
    )
    assert events == [
        ("delta", {"text": "part"}),
        (
            "error",
            {
                "error": {
                    "type": "timeout",
                    "code": "upstream_timeout",
                    "message": "too slow",
                    "request_id": "req123",
                }
            },
        ),
    ]


@pytest.mark.parametrize(
    ("error", "type_"),
    [
        (InvalidRequest("bad", code="invalid_field", param="x"), "invalid_request"),
        (RateLimited("slow"), "rate_limit"),
        (UpstreamStreamInterrupted("cut"), "upstream"),
    ],
)
def test_error_body(error: GatewayError, type_: str) -> None:
    assert door.error_body(error, "r1") == {
        "error": {"type": type_, "code": error.code, "message": error.message, "request_id": "r1"}
    }
