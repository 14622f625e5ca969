"""The Ollama /api/chat adapter: request building, answers and NDJSON streams."""

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
    ToolSpec,
    Usage,
)
from llm_gateway.config import Deployment, Provider
from llm_gateway.errors import (
    InvalidRequest,
    UpstreamMalformedResponse,
    UpstreamStatusError,
    UpstreamStreamInterrupted,
)
from llm_gateway.providers.ollama import OllamaAdapter

ADAPTER = OllamaAdapter()
CREATED = "2025-01-01T12:00:00.000000Z"


def deployment(**fields: Any) -> Deployment:
    values: dict[str, Any] = {
        "name": "llama-dep",
        "provider": Provider.OLLAMA,
        "base_url": "http://localhost:11434",
        "upstream_model": "llama3.2:3b",
        "api_key": None,
        "timeout_s": 60.0,
        "max_concurrent": 2,
        "weight": 1,
        "default_max_tokens": 1024,
        "price": None,
    }
    values.update(fields)
    return Deployment(**values)


def chat(**fields: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "model": "llama",
        "messages": [Message(role="user", content=[TextPart("hi")])],
    }
    values.update(fields)
    return ChatRequest(**values)


def body_of(request_chat: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(ADAPTER.build_request(deployment(), request_chat).body)
    return body


def line(message: dict[str, Any] | None = None, done: bool = False, **extra: Any) -> bytes:
    data: dict[str, Any] = {"model": "llama3.2:3b", "created_at": CREATED, "done": done}
    if message is not None:
        data["message"] = {"role": "assistant", "content": "", **message}
    data.update(extra)
    return orjson.dumps(data)


def final(done_reason: str = "stop", **extra: Any) -> bytes:
    return line(
        {"content": ""},
        done=True,
        done_reason=done_reason,
        total_duration=4883583458,
        load_duration=1334875,
        prompt_eval_count=26,
        prompt_eval_duration=342546000,
        eval_count=282,
        eval_duration=4535599000,
        **extra,
    )


async def lines_of(lines: list[bytes]) -> AsyncIterator[bytes]:
    for item in lines:
        yield item


async def collect(lines: list[bytes]) -> list[StreamEvent]:
    return [e async for e in ADAPTER.parse_stream(deployment(), lines_of(lines))]


# --- build_request -----------------------------------------------------------------------------


def test_build_request_minimal() -> None:
    request = ADAPTER.build_request(deployment(), chat())
    assert request.url == "http://localhost:11434/api/chat"
    assert request.headers["content-type"] == "application/json"
    assert request.pool == "llama-dep"
    assert request.max_connections == 2
    assert json.loads(request.body) == {
        "model": "llama3.2:3b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,  # Ollama streams by default: always say so explicitly
    }


def test_build_request_stream_true() -> None:
    assert body_of(chat(stream=True))["stream"] is True


def test_build_request_full() -> None:
    body = body_of(
        chat(
            system="Be brief.",
            messages=[
                Message(role="user", content=[TextPart("what is "), TextPart("this?"),
                                              ImagePart(data="iVBOR", media_type="image/png")]),
                Message(role="assistant", content=[TextPart("")],
                        tool_calls=[ToolCall("call_1", "lookup", '{"q": "cat", "n": 2}'),
                                    ToolCall("call_2", "time", "")]),
                Message(role="tool", content=[TextPart("a cat")], tool_call_id="call_1"),
                Message(role="tool", content=[TextPart("noon")], tool_call_id="call_2"),
                Message(role="tool", content=[TextPart("?")], tool_call_id="unknown"),
            ],
            tools=[ToolSpec("lookup", "Look up", {"type": "object"}), ToolSpec("time")],
            temperature=0.1,
            top_p=0.2,
            top_k=3,
            seed=4,
            max_tokens=5,
            stop=["###"],
            json_output=True,
        )
    )  # fmt: skip
    assert body == {
        "model": "llama3.2:3b",
        "stream": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "what is this?", "images": ["iVBOR"]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "lookup", "arguments": {"q": "cat", "n": 2}}},
                    {"function": {"name": "time", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "a cat", "tool_name": "lookup"},
            {"role": "tool", "content": "noon", "tool_name": "time"},
            {"role": "tool", "content": "?"},
        ],
        "options": {"temperature": 0.1, "top_p": 0.2, "top_k": 3, "seed": 4, "num_predict": 5,
                    "stop": ["###"]},
        "format": "json",
        "tools": [
            {"type": "function", "function": {"name": "lookup", "description": "Look up",
                                              "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "time", "description": "",
                                              "parameters": {"type": "object",
                                                             "properties": {}}}},
        ],
    }  # fmt: skip


def test_build_request_refuses_image_urls() -> None:
    with pytest.raises(InvalidRequest) as info:
        body_of(chat(messages=[Message(role="user", content=[ImagePart(url="https://x")])]))
    assert info.value.code == "unsupported_content"


def test_build_request_refuses_invalid_tool_arguments() -> None:
    messages = [Message(role="assistant", tool_calls=[ToolCall("c", "f", "{not json")])]
    with pytest.raises(InvalidRequest) as info:
        body_of(chat(messages=messages))
    assert info.value.code == "invalid_tool_call"


# --- parse_response ------------------------------------------------------------------------------


def answer(message: dict[str, Any], **extra: Any) -> bytes:
    data = {
        "model": "llama3.2:3b",
        "created_at": CREATED,
        "message": {"role": "assistant", "content": "", **message},
        "done": True,
        "done_reason": "stop",
        "total_duration": 5191566416,
        "prompt_eval_count": 26,
        "eval_count": 298,
        **extra,
    }
    return orjson.dumps(data)


def test_parse_text_response() -> None:
    response = ADAPTER.parse_response(deployment(), answer({"content": "The sky is blue."}))
    assert response.model == "llama-dep"
    assert response.text == "The sky is blue."
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.usage == Usage(26, 298)


def test_parse_tool_call_response() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        answer(
            {
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}},
                    {"function": {"name": "get_time", "arguments": {}}},
                    {"id": "call_xyz", "function": {"name": "f", "arguments": '{"raw": true}'}},
                ]
            }
        ),
    )
    assert response.finish_reason == "tool_calls"
    ids = [c.id for c in response.tool_calls]
    assert len(set(ids)) == 3
    assert ids[2] == "call_xyz"
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_time", "f"]
    assert json.loads(response.tool_calls[0].arguments) == {"city": "Toronto"}
    assert json.loads(response.tool_calls[1].arguments) == {}
    assert response.tool_calls[2].arguments == '{"raw": true}'


def test_parse_length_and_missing_counts() -> None:
    response = ADAPTER.parse_response(
        deployment(),
        orjson.dumps({"message": {"role": "assistant", "content": "cut"}, "done": True,
                      "done_reason": "length"}),
    )  # fmt: skip
    assert response.finish_reason == "length"
    assert response.usage == Usage(0, 0)


@pytest.mark.parametrize(
    "body",
    [b"nope", b"[]", b'{"done": true}', b'{"message": "text"}',
     b'{"message": {"tool_calls": [{"function": {}}]}}'],
)  # fmt: skip
def test_parse_malformed_response(body: bytes) -> None:
    with pytest.raises(UpstreamMalformedResponse):
        ADAPTER.parse_response(deployment(), body)


# --- parse_stream ----------------------------------------------------------------------


async def test_stream_text() -> None:
    events = await collect(
        [line({"content": "The"}), line({"content": " sky"}), b"", line({"content": " is"}),
         final()]
    )  # fmt: skip
    assert events == [
        StreamStart(model="llama-dep"),
        TextDelta("The"),
        TextDelta(" sky"),
        TextDelta(" is"),
        StreamEnd("stop", Usage(26, 282)),
    ]


async def test_stream_length() -> None:
    events = await collect([line({"content": "a"}), final("length")])
    assert events[-1] == StreamEnd("length", Usage(26, 282))


async def test_stream_tool_calls() -> None:
    events = await collect(
        [
            line({"tool_calls": [{"function": {"name": "get_weather",
                                               "arguments": {"city": "Paris"}}}]}),
            line({"tool_calls": [{"function": {"name": "get_time", "arguments": {}}}]}),
            final(),
        ]
    )  # fmt: skip
    assert events[0] == StreamStart(model="llama-dep")
    first, second = events[1], events[2]
    assert isinstance(first, ToolCallDelta)
    assert isinstance(second, ToolCallDelta)
    assert (first.index, first.name) == (0, "get_weather")
    assert (second.index, second.name) == (1, "get_time")
    assert first.id
    assert second.id
    assert first.id != second.id
    assert json.loads(first.arguments) == {"city": "Paris"}
    assert json.loads(second.arguments) == {}
    assert events[3] == StreamEnd("tool_calls", Usage(26, 282))


async def test_stream_in_band_error() -> None:
    with pytest.raises(UpstreamStatusError):
        await collect([line({"content": "a"}), b'{"error": "model runner has crashed"}'])


async def test_stream_eof_without_done_is_interrupted() -> None:
    with pytest.raises(UpstreamStreamInterrupted):
        await collect([line({"content": "a"}), line({"content": "b"})])


async def test_stream_empty_is_malformed() -> None:
    with pytest.raises(UpstreamMalformedResponse, match="empty"):
        await collect([])


@pytest.mark.parametrize(
    "bad",
    [b'{"model": "x", "message": {"content": "a"', b"[1]", b'"text"',
     b'{"message": {"tool_calls": [{"function": {"arguments": {}}}]}, "done": false}'],
)  # fmt: skip
async def test_stream_malformed_line(bad: bytes) -> None:
    with pytest.raises(UpstreamMalformedResponse):
        await collect([line({"content": "a"}), bad, final()])


def test_a_json_schema_becomes_ollamas_format() -> None:
    schema = {
        "name": "answer",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    body = orjson.loads(
        ADAPTER.build_request(deployment(), chat(json_output=True, json_schema=schema)).body
    )
    assert body["format"] == schema["schema"]
    assert (
        orjson.loads(ADAPTER.build_request(deployment(), chat(json_output=True)).body)["format"]
        == "json"
    )
