"""The OpenAI Chat Completions adapter: request building, answers and streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llm_gateway.chat import (
    ChatRequest,
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
    UpstreamMalformedResponse,
    UpstreamStatusError,
    UpstreamStreamInterrupted,
)
from llm_gateway.providers.openai import OpenAIAdapter

ADAPTER = OpenAIAdapter()


def deployment(**fields: Any) -> Deployment:
    values: dict[str, Any] = {
        "name": "gpt-dep",
        "provider": Provider.OPENAI,
        "base_url": "https://api.openai.test/v1",
        "upstream_model": "gpt-4o-mini",
        "api_key": "sk-test-123",
        "timeout_s": 12.5,
        "max_concurrent": 7,
        "weight": 1,
        "default_max_tokens": 1024,
        "price": None,
    }
    values.update(fields)
    return Deployment(**values)


def chat(**fields: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "model": "gpt",
        "messages": [Message(role="user", content=[TextPart("hi")])],
    }
    values.update(fields)
    return ChatRequest(**values)


async def lines_of(*lines: bytes | str) -> AsyncIterator[bytes]:
    for line in lines:
        yield line.encode() if isinstance(line, str) else line


def sse(*chunks: Any) -> list[bytes]:
    """SSE lines for ``chunks`` (dicts become JSON), each followed by a blank line."""
    out: list[bytes] = []
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else json.dumps(chunk)
        out += [f"data: {data}".encode(), b""]
    return out


async def collect(lines: list[bytes]) -> list[StreamEvent]:
    return [e async for e in ADAPTER.parse_stream(deployment(), lines_of(*lines))]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


USAGE_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
}


# --- build_request ---------------------------------------------------------------------


def test_build_request_url_headers_and_pool() -> None:
    request = ADAPTER.build_request(deployment(), chat())
    assert request.url == "https://api.openai.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.headers["content-type"] == "application/json"
    assert "x-api-key" not in request.headers
    assert request.pool == "gpt-dep"
    assert request.max_connections == 7
    assert request.read_timeout_s == 12.5
    assert json.loads(request.body) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_build_request_without_api_key_sends_no_authorization() -> None:
    request = ADAPTER.build_request(deployment(api_key=None), chat())
    assert "authorization" not in {k.lower() for k in request.headers}


def test_build_request_full_body() -> None:
    request = ADAPTER.build_request(
        deployment(),
        chat(
            system="Be terse.",
            messages=[
                Message(role="user", content=[TextPart("weather?")], name="bob"),
                Message(
                    role="assistant",
                    tool_calls=[ToolCall("call_1", "weather", '{"city":"Oslo"}')],
                ),
                Message(role="tool", content=[TextPart("-3C")], tool_call_id="call_1"),
            ],
            tools=[ToolSpec("weather", "Get weather", {"type": "object"}), ToolSpec("noop")],
            tool_choice=ToolChoice("required"),
            max_tokens=99,
            temperature=0.0,
            top_p=1.0,
            stop=["x"],
            seed=5,
            user="u1",
            json_output=True,
            stream=True,
        ),
    )
    assert json.loads(request.body) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "weather?", "name": "bob"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 99,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 5,
        "user": "u1",
        "stop": ["x"],
        "response_format": {"type": "json_object"},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Get weather",
                    "parameters": {"type": "object"},
                },
            },
            {
                "type": "function",
                "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}},
            },
        ],
        "tool_choice": "required",
    }


def test_build_request_for_compatible_server_uses_max_tokens() -> None:
    request = ADAPTER.build_request(
        deployment(provider=Provider.OPENAI_COMPATIBLE, api_key=None), chat(max_tokens=10)
    )
    body = json.loads(request.body)
    assert body["max_tokens"] == 10
    assert "max_completion_tokens" not in body


def test_build_request_named_tool_choice() -> None:
    body = json.loads(
        ADAPTER.build_request(deployment(), chat(tool_choice=ToolChoice("required", "f"))).body
    )
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


# --- parse_response -----------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": 19,
                "completion_tokens": 10,
                "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            },
            "system_fingerprint": "fp_1",
            **extra,
        }
    )


def test_parse_text_response() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        completion({"role": "assistant", "content": "Hello there.", "refusal": None}),
    )
    assert response.model == "gpt-dep"
    assert response.text == "Hello there."
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.usage == Usage(19, 10)


def test_parse_tool_call_response() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "time"}},
                ],
            },
            finish="tool_calls",
        ),
    )
    assert response.text == ""
    assert response.tool_calls == [
        ToolCall("call_a", "weather", '{"city": "Paris"}'),
        ToolCall("call_b", "time", "{}"),
    ]
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        (None, "stop"),
        ("something_new", "stop"),
    ],
)
def test_parse_finish_reasons(finish: str | None, expected: str) -> None:
    response = ADAPTER.parse_response(deployment(), completion({"content": "x"}, finish=finish))
    assert response.finish_reason == expected


def test_parse_response_without_usage() -> None:
    body = json.loads(completion({"content": "x"}))
    del body["usage"]
    assert ADAPTER.parse_response(deployment(), orjson.dumps(body)).usage is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"choices": []}',
        b'{"object": "chat.completion"}',
        b'{"choices": [{"finish_reason": "stop"}]}',
        b'{"choices": [{"message": {"tool_calls": [{"type": "function"}]}}]}',
    ],
)
def test_parse_malformed_response(body: bytes) -> None:
    with pytest.raises(UpstreamMalformedResponse):
        ADAPTER.parse_response(deployment(), body)


# --- parse_stream ---------------------------------------------------------------------------


async def test_stream_text_with_usage() -> None:
    events = await collect(
        [
            b": keep-alive comment",
            *sse(
                chunk({"role": "assistant", "content": "", "refusal": None}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo!"}),
                chunk({}, finish="stop"),
                USAGE_CHUNK,
                "[DONE]",
            ),
        ]
    )
    assert events == [
        StreamStart(model="gpt-dep"),
        TextDelta("Hel"),
        TextDelta("lo!"),
        StreamEnd("stop", Usage(9, 4)),
    ]


async def test_stream_tool_calls_split_across_deltas() -> None:
    events = await collect(
        sse(
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                   "function": {"name": "weather", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                   "function": {"name": "time", "arguments": "{}"}}]}),
            chunk({}, finish="tool_calls"),
            USAGE_CHUNK,
            "[DONE]",
        )
    )  # fmt: skip
    assert events[0] == StreamStart(model="gpt-dep")
    assert events[-1] == StreamEnd("tool_calls", Usage(9, 4))
    deltas = events[1:-1]
    assert all(isinstance(d, ToolCallDelta) for d in deltas)
    assert deltas[0] == ToolCallDelta(0, "", id="call_a", name="weather")
    joined: dict[int, str] = {}
    for delta in deltas:
        assert isinstance(delta, ToolCallDelta)
        joined[delta.index] = joined.get(delta.index, "") + delta.arguments
    assert joined == {0: '{"city": "Paris"}', 1: "{}"}
    assert [(d.index, d.id, d.name) for d in deltas if isinstance(d, ToolCallDelta) and d.id] == [
        (0, "call_a", "weather"),
        (1, "call_b", "time"),
    ]


async def test_stream_multi_line_data_event() -> None:
    # SSE allows an event's data over several lines; they join with "\n" (valid JSON).
    lines = [b'data: {"choices": [{"delta": {"content": "x"},', b'data: "index": 0}]}', b""]
    events = await collect([*lines, *sse(chunk({}, finish="length"), "[DONE]")])
    assert events == [StreamStart(model="gpt-dep"), TextDelta("x"), StreamEnd("length", None)]


async def test_stream_done_only() -> None:
    assert await collect(sse("[DONE]")) == [
        StreamStart(model="gpt-dep"),
        StreamEnd("stop", None),
    ]


async def test_stream_in_band_error() -> None:
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    with pytest.raises(UpstreamStatusError):
        await collect(sse(chunk({"content": "partial"}), error))


async def test_stream_in_band_error_first() -> None:
    events = ADAPTER.parse_stream(
        deployment(), lines_of(*sse({"error": {"message": "x", "type": "rate_limit"}}))
    )
    with pytest.raises(UpstreamStatusError):
        await anext(events)


async def test_stream_eof_without_done_or_finish_is_interrupted() -> None:
    with pytest.raises(UpstreamStreamInterrupted):
        await collect(sse(chunk({"role": "assistant"}), chunk({"content": "Hel"})))


async def test_stream_empty_is_malformed() -> None:
    with pytest.raises(UpstreamMalformedResponse, match="empty"):
        await collect([])


async def test_stream_cut_mid_line_is_malformed() -> None:
    # The connection dropped halfway through a JSON payload.
    with pytest.raises(UpstreamMalformedResponse):
        await collect([*sse(chunk({"content": "a"})), b'data: {"choices": [{"del'])


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '"text"'])
async def test_stream_malformed_chunk(data: str) -> None:
    with pytest.raises(UpstreamMalformedResponse):
        await collect(sse(chunk({"content": "a"}), data, "[DONE]"))


def test_a_json_schema_is_forwarded_whole_and_json_mode_otherwise() -> None:
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True}
    body = orjson.loads(
        ADAPTER.build_request(deployment(), chat(json_output=True, json_schema=schema)).body
    )
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}
    body = orjson.loads(ADAPTER.build_request(deployment(), chat(json_output=True)).body)
    assert body["response_format"] == {"type": "json_object"}


def test_a_refusal_becomes_the_text_with_a_content_filter_finish() -> None:
    answer = {
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": None, "refusal": "I can't."}}],
    }  # fmt: skip
    response = ADAPTER.parse_response(deployment(), orjson.dumps(answer))
    assert (response.text, response.finish_reason) == ("I can't.", "content_filter")
