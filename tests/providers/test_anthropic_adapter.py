"""The Anthropic Messages adapter: request building, answers and streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llm_gateway.chat import (
    ChatRequest,
    ImagePart,
    Message,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
    Usage,
)
from llm_gateway.config import Deployment, Provider
from llm_gateway.errors import (
    UpstreamError,
    UpstreamMalformedResponse,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamStreamInterrupted,
)
from llm_gateway.providers.anthropic import AnthropicAdapter

ADAPTER = AnthropicAdapter()


def deployment(**fields: Any) -> Deployment:
    values: dict[str, Any] = {
        "name": "claude-dep",
        "provider": Provider.ANTHROPIC,
        "base_url": "https://api.anthropic.test/v1",
        "upstream_model": "claude-sonnet-4-5",
        "api_key": "sk-ant-test",
        "timeout_s": 20.0,
        "max_concurrent": 3,
        "weight": 1,
        "default_max_tokens": 2048,
        "price": None,
    }
    values.update(fields)
    return Deployment(**values)


def chat(**fields: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "model": "claude",
        "messages": [Message(role="user", content=[TextPart("hi")])],
    }
    values.update(fields)
    return ChatRequest(**values)


def body_of(request_chat: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(ADAPTER.build_request(deployment(), request_chat).body)
    return body


async def lines_of(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


def sse(*events: dict[str, Any]) -> list[bytes]:
    out: list[bytes] = []
    for event in events:
        out += [f"event: {event['type']}".encode(), f"data: {json.dumps(event)}".encode(), b""]
    return out


async def collect(lines: list[bytes]) -> list[StreamEvent]:
    return [e async for e in ADAPTER.parse_stream(deployment(), lines_of(lines))]


# --- build_request --------------------------------------------------------------------------


def test_build_request_url_and_headers() -> None:
    request = ADAPTER.build_request(deployment(), chat())
    assert request.url == "https://api.anthropic.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in {k.lower() for k in request.headers}
    assert request.pool == "claude-dep"
    assert request.max_connections == 3
    assert request.read_timeout_s == 20.0


def test_build_request_without_key() -> None:
    request = ADAPTER.build_request(deployment(api_key=None), chat())
    keys = {k.lower() for k in request.headers}
    assert "x-api-key" not in keys
    assert "authorization" not in keys
    assert request.headers["anthropic-version"] == "2023-06-01"


def test_build_request_minimal_body_uses_default_max_tokens() -> None:
    assert body_of(chat()) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_build_request_full_body() -> None:
    body = body_of(
        chat(
            system="Be terse.",
            messages=[
                Message(
                    role="user",
                    content=[
                        TextPart("look"),
                        TextPart(""),  # empty text blocks are refused by Anthropic: dropped
                        ImagePart(data="iVBOR", media_type="image/webp"),
                        ImagePart(url="https://x/y.png"),
                        ImagePart(data="R0lG"),
                    ],
                ),
                Message(
                    role="assistant",
                    content=[TextPart("ok")],
                    tool_calls=[ToolCall("toolu_1", "f", '{"a": [1, 2]}'), ToolCall("t2", "g", "")],
                ),
                Message(role="tool", content=[TextPart("r1")], tool_call_id="toolu_1"),
                Message(role="tool", content=[TextPart("boom")], tool_call_id="t2", is_error=True),
                Message(role="user", content=[TextPart("next")]),
            ],
            tools=[ToolSpec("f", "does f", {"type": "object"}), ToolSpec("g")],
            tool_choice=ToolChoice("required"),
            max_tokens=77,
            temperature=0.3,
            top_p=0.8,
            top_k=5,
            stop=["STOP"],
            user="u-9",
            stream=True,
            seed=4,  # Anthropic has no seed
        )
    )
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 77,
        "system": "Be terse.",
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/webp",
                                                 "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "R0lG"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}},
                    {"type": "tool_use", "id": "t2", "name": "g", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r1"},
                    {"type": "tool_result", "tool_use_id": "t2", "content": "boom",
                     "is_error": True},
                    {"type": "text", "text": "next"},
                ],
            },
        ],
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 5,
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "u-9"},
        "tools": [
            {"name": "f", "description": "does f", "input_schema": {"type": "object"}},
            {"name": "g", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice("auto"), {"type": "auto"}),
        (ToolChoice("none"), {"type": "none"}),
        (ToolChoice("required"), {"type": "any"}),
        (ToolChoice("required", "f"), {"type": "tool", "name": "f"}),
    ],
)
def test_build_request_tool_choice(choice: ToolChoice, expected: dict[str, Any]) -> None:
    assert body_of(chat(tools=[ToolSpec("f")], tool_choice=choice))["tool_choice"] == expected


# --- parse_response ------------------------------------------------------------------------


def message(content: list[dict[str, Any]], stop: str | None = "end_turn", **usage: int) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 11, **usage},
        }
    )


def test_parse_text_response() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "world."}]),
    )
    assert response.model == "claude-dep"
    assert response.text == "Hello world."
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.usage == Usage(25, 11)


def test_parse_tool_use_response_ignoring_thinking() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        message(
            [
                {"type": "thinking", "thinking": "The user wants...", "signature": "EqQB"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "weather",
                 "input": {"city": "Paris", "days": 2}},
                {"type": "tool_use", "id": "toolu_02", "name": "time", "input": {}},
            ],
            stop="tool_use",
        ),
    )  # fmt: skip
    assert response.text == "Checking."
    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in response.tool_calls] == [
        ("toolu_01", "weather"),
        ("toolu_02", "time"),
    ]
    assert json.loads(response.tool_calls[0].arguments) == {"city": "Paris", "days": 2}
    assert json.loads(response.tool_calls[1].arguments) == {}


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_parse_stop_reasons(stop: str | None, expected: str) -> None:
    response = ADAPTER.parse_response(deployment(), message([{"type": "text", "text": "x"}], stop))
    assert response.finish_reason == expected


def test_parse_usage_counts_cache_tokens_as_input() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        message(
            [{"type": "text", "text": "x"}],
            cache_creation_input_tokens=1000,
            cache_read_input_tokens=500,
        ),
    )
    assert response.usage == Usage(25 + 1000 + 500, 11)


@pytest.mark.parametrize(
    "body",
    [b"<html>", b"[]", b'{"type": "message"}', b'{"content": [{"text": "no type"}]}',
     b'{"content": [{"type": "tool_use", "name": "f"}]}'],
)  # fmt: skip
def test_parse_malformed_response(body: bytes) -> None:
    with pytest.raises(UpstreamMalformedResponse):
        ADAPTER.parse_response(deployment(), body)


# --- parse_stream -----------------------------------------------------------------------------


def message_start(input_tokens: int = 472, **usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 2, **usage},
            "content": [],
            "stop_reason": None,
        },
    }


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def text_delta(index: int, text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "text_delta", "text": text}}  # fmt: skip


def json_delta(index: int, partial: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial}}  # fmt: skip


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop: str, output_tokens: int = 89, **usage: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens, **usage},
    }


PING = {"type": "ping"}
STOP = {"type": "message_stop"}
TOOL: dict[str, Any] = {
    "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}
}  # fmt: skip


async def test_stream_text() -> None:
    events = await collect(
        sse(
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            PING,
            text_delta(0, "Hello"),
            text_delta(0, "!"),
            block_stop(0),
            message_delta("end_turn", 15),
            STOP,
        )
    )
    assert events == [
        StreamStart(model="claude-dep", input_tokens=472),
        TextDelta("Hello"),
        TextDelta("!"),
        StreamEnd("stop", Usage(472, 15)),
    ]


async def test_stream_text_then_tool_use_with_split_input() -> None:
    events = await collect(
        sse(
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            text_delta(0, "Okay, let's check the weather."),
            block_stop(0),
            block_start(1, TOOL),
            json_delta(1, ""),
            json_delta(1, '{"location":'),
            json_delta(1, ' "San Fra'),
            json_delta(1, 'ncisco, CA"}'),
            block_stop(1),
            message_delta("tool_use", 89),
            STOP,
        )
    )
    assert events[0] == StreamStart(model="claude-dep", input_tokens=472)
    assert events[1] == TextDelta("Okay, let's check the weather.")
    assert events[2] == ToolCallDelta(0, "", id=TOOL["id"], name="get_weather")
    arguments = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    assert json.loads(arguments) == {"location": "San Francisco, CA"}
    assert events[-1] == StreamEnd("tool_calls", Usage(472, 89))


async def test_stream_tool_block_without_input_deltas_yields_empty_object() -> None:
    events = await collect(
        sse(
            message_start(),
            block_start(0, TOOL),
            json_delta(0, ""),  # Anthropic opens tool input with an empty fragment
            block_stop(0),
            block_start(1, TOOL | {"id": "toolu_2", "name": "time"}),
            block_stop(1),
            message_delta("tool_use"),
            STOP,
        )
    )
    tool_deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert tool_deltas == [
        ToolCallDelta(0, "", id=TOOL["id"], name="get_weather"),
        ToolCallDelta(0, "{}"),
        ToolCallDelta(1, "", id="toolu_2", name="time"),
        ToolCallDelta(1, "{}"),
    ]


async def test_stream_ignores_thinking_blocks() -> None:
    events = await collect(
        sse(
            message_start(),
            block_start(0, {"type": "thinking", "thinking": ""}),
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "thinking_delta", "thinking": "Let me think"}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}},
            block_stop(0),
            block_start(1, {"type": "text", "text": ""}),
            text_delta(1, "Answer"),
            block_stop(1),
            message_delta("end_turn", 30),
            STOP,
        )
    )  # fmt: skip
    assert events == [
        StreamStart(model="claude-dep", input_tokens=472),
        TextDelta("Answer"),
        StreamEnd("stop", Usage(472, 30)),
    ]


async def test_stream_usage_with_cache_tokens() -> None:
    events = await collect(
        sse(
            message_start(10, cache_creation_input_tokens=200, cache_read_input_tokens=3000),
            message_delta("max_tokens", 7),
            STOP,
        )
    )
    assert events == [
        StreamStart(model="claude-dep", input_tokens=3210),
        StreamEnd("length", Usage(3210, 7)),
    ]


async def test_stream_cumulative_usage_in_message_delta() -> None:
    events = await collect(
        sse(
            message_start(10),
            message_delta(
                "end_turn",
                40,
                input_tokens=12,
                cache_creation_input_tokens=0,
                cache_read_input_tokens=100,
            ),
            STOP,
        )
    )
    assert events[-1] == StreamEnd("stop", Usage(112, 40))


@pytest.mark.parametrize(
    ("error_type", "error_class", "code", "status"),
    [
        ("overloaded_error", UpstreamStatusError, "upstream_overloaded", 503),
        ("rate_limit_error", UpstreamRateLimited, "upstream_rate_limited", 429),
        ("api_error", UpstreamStatusError, "upstream_error", 502),
    ],
)
async def test_stream_in_band_error(
    error_type: str, error_class: type[UpstreamError], code: str, status: int
) -> None:
    error = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    lines = sse(message_start(), block_start(0, {"type": "text", "text": ""}),
                text_delta(0, "par"), error)  # fmt: skip
    with pytest.raises(error_class) as info:
        await collect(lines)
    assert type(info.value) is error_class
    assert info.value.code == code
    assert info.value.status == status
    assert "Overloaded" not in info.value.message


async def test_stream_eof_without_message_stop_is_interrupted() -> None:
    lines = sse(message_start(), block_start(0, {"type": "text", "text": ""}),
                text_delta(0, "Hel"), block_stop(0), message_delta("end_turn"))  # fmt: skip
    with pytest.raises(UpstreamStreamInterrupted):
        await collect(lines)


async def test_stream_empty_is_malformed() -> None:
    with pytest.raises(UpstreamMalformedResponse, match="empty"):
        await collect([])


@pytest.mark.parametrize("data", [b"data: {oops", b"data: [1]", b'data: {"no": "type"}'])
async def test_stream_malformed_event(data: bytes) -> None:
    with pytest.raises(UpstreamMalformedResponse):
        await collect([*sse(message_start()), b"event: content_block_delta", data, b""])


@pytest.mark.parametrize(("given", "sent"), [(0.3, 0.3), (1.0, 1.0), (1.7, 1.0)])
def test_openai_scale_temperatures_are_capped_at_anthropics_maximum(
    given: float, sent: float
) -> None:
    body = orjson.loads(ADAPTER.build_request(deployment(), chat(temperature=given)).body)
    assert body["temperature"] == sent
