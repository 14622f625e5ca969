"""The Anthropic emulator, driven by the official ``anthropic`` SDK (raw HTTP for wire details)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from llm_gateway.emulators import EmulatorServer

Directive = Callable[..., str]


def _user(content: Any) -> list[Any]:
    return [{"role": "user", "content": content}]


def _sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_text_message(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-test",
        max_tokens=100,
        system="be kind and brief",
        messages=_user([{"type": "text", "text": "hello there"}]),
    )
    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", "claude-test")
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "text"
    assert block.text == "Echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 3)


def test_stream_event_sequence_on_the_wire(http: httpx.Client, api_key: str) -> None:
    response = http.post(
        "/v1/messages",
        json={"model": "c", "max_tokens": 50, "stream": True, "messages": _user("one two")},
        headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(response.text)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 2
    assert start["usage"]["output_tokens"] == 1
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert [d["delta"]["text"] for n, d in events if n == "content_block_delta"] == [
        "Echo: ",
        "one ",
        "two",
    ]
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3


def test_sdk_stream_helper_accumulates_text(
    claude: anthropic.Anthropic, directive: Directive
) -> None:
    with claude.messages.stream(
        model="c", max_tokens=100, messages=_user(directive(chunks=["Hi", ", ", "there"]))
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Hi", ", ", "there"]
    assert final.content[0].type == "text"
    assert final.content[0].text == "Hi, there"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 2


def test_tool_use_then_tool_result_round_trip(
    claude: anthropic.Anthropic, directive: Directive
) -> None:
    ask = directive(
        "weather?",
        reply="Let me check.",
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
    )
    tools: Any = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = claude.messages.create(model="c", max_tokens=100, tools=tools, messages=_user(ask))
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert use.type == "tool_use"
    assert use.id.startswith("toolu_")
    assert use.name == "get_weather"
    assert use.input == {"city": "Oslo"}

    second = claude.messages.create(
        model="c",
        max_tokens=100,
        tools=tools,
        messages=[
            *_user(ask),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": use.id,
                        "content": [{"type": "text", "text": "rainy"}],
                    }
                ],
            },
        ],
    )
    assert second.content[0].type == "text"
    assert second.content[0].text == "Tool said: rainy"
    assert second.stop_reason == "end_turn"


def test_tool_use_without_reply_has_no_text_block(
    claude: anthropic.Anthropic, directive: Directive
) -> None:
    ask = directive(tool_calls=[{"name": "f", "arguments": {}}])
    message = claude.messages.create(model="c", max_tokens=100, messages=_user(ask))
    assert [b.type for b in message.content] == ["tool_use"]


def test_streamed_tool_use_sends_partial_json(
    claude: anthropic.Anthropic, directive: Directive
) -> None:
    arguments = {"query": "emulated providers", "limit": 3}
    ask = directive(tool_calls=[{"name": "search", "arguments": arguments}])
    events = list(
        claude.messages.create(model="c", max_tokens=100, messages=_user(ask), stream=True)
    )
    starts = [e for e in events if e.type == "content_block_start"]
    assert len(starts) == 1
    block = starts[0].content_block
    assert block.type == "tool_use"
    assert block.input == {}
    assert block.id.startswith("toolu_")
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == arguments
    deltas = [e for e in events if e.type == "message_delta"]
    assert deltas[0].delta.stop_reason == "tool_use"

    with claude.messages.stream(model="c", max_tokens=100, messages=_user(ask)) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == arguments


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
def test_status_directive_raises_typed_sdk_error(
    claude: anthropic.Anthropic,
    directive: Directive,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(error_class) as caught:
        claude.messages.create(
            model="c", max_tokens=10, messages=_user(directive(status=status, retry_after=2))
        )
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"].startswith("req_")
    assert caught.value.response.headers["retry-after"] == "2"


def test_authentication_and_version_header(
    emulator: EmulatorServer, http: httpx.Client, api_key: str
) -> None:
    wrong = anthropic.Anthropic(base_url=emulator.base_url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        wrong.messages.create(model="c", max_tokens=10, messages=_user("hi"))
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "authentication_error"

    body = {"model": "c", "max_tokens": 10, "messages": _user("hi")}
    missing_key = http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert missing_key.status_code == 401
    no_version = http.post("/v1/messages", json=body, headers={"x-api-key": api_key})
    assert no_version.status_code == 400
    assert "anthropic-version" in no_version.json()["error"]["message"]
    ok = http.post(
        "/v1/messages", json=body, headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    )
    assert ok.status_code == 200
    assert ok.json()["content"][0]["text"] == "Echo: hi"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "c", "messages": _user("x")}, "max_tokens"),
        ({"model": "c", "max_tokens": 0, "messages": _user("x")}, "max_tokens"),
        ({"model": "c", "max_tokens": 5, "messages": []}, "messages"),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "messages": [{"role": "system", "content": "s"}, *_user("x")],
            },
            "messages.0.role",
        ),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
            "first message",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "messages": _user([{"type": "tool_result", "tool_use_id": "toolu_x"}]),
            },
            "tool_use_id",
        ),
        (
            {"model": "c", "max_tokens": 5, "messages": _user([{"type": "video"}])},
            "messages.0.content.0.type",
        ),
        ({"model": "c", "max_tokens": 5, "system": 7, "messages": _user("x")}, "system"),
    ],
)
def test_invalid_requests_are_rejected_like_the_api(
    claude: anthropic.Anthropic, body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.post("/v1/messages", body=body, cast_to=httpx2.Response)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]


def test_limits_and_stop_sequences(claude: anthropic.Anthropic) -> None:
    short = claude.messages.create(model="c", max_tokens=2, messages=_user("one two three"))
    assert short.content[0].type == "text"
    assert short.content[0].text == "Echo: one"
    assert short.stop_reason == "max_tokens"
    assert short.usage.output_tokens == 2
    stopped = claude.messages.create(
        model="c", max_tokens=50, stop_sequences=["END"], messages=_user("one END two")
    )
    assert stopped.content[0].type == "text"
    assert stopped.content[0].text == "Echo: one "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "END")


def test_usage_false_reports_zero(claude: anthropic.Anthropic, directive: Directive) -> None:
    message = claude.messages.create(
        model="c", max_tokens=10, messages=_user(directive(usage=False))
    )
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)


def test_in_band_stream_error(claude: anthropic.Anthropic, directive: Directive) -> None:
    events: list[Any] = []
    stream = claude.messages.create(
        model="c",
        max_tokens=10,
        stream=True,
        messages=_user(directive("a b", stream_error="overloaded_error")),
    )
    # The error arrives on a 200 response, so the SDK raises the generic status error.
    with pytest.raises(anthropic.APIStatusError) as caught:
        events.extend(stream)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    seen = [e.type for e in events]
    assert seen[:2] == ["message_start", "content_block_start"]
    assert "content_block_delta" in seen
    assert "message_stop" not in seen


def test_truncated_stream_breaks_before_message_stop(
    claude: anthropic.Anthropic, directive: Directive
) -> None:
    events: list[Any] = []
    stream = claude.messages.create(
        model="c",
        max_tokens=10,
        stream=True,
        messages=_user(directive("a b c d", truncate_after=1)),
    )
    # The SDK does not wrap a connection dropped mid-stream: httpx2's error surfaces as is.
    with pytest.raises(httpx2.RemoteProtocolError):
        events.extend(stream)
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]


def test_truncated_and_malformed_bodies(claude: anthropic.Anthropic, directive: Directive) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(
            model="c", max_tokens=10, messages=_user(directive(truncate_after=0))
        )
    with pytest.raises(json.JSONDecodeError):
        claude.messages.create(model="c", max_tokens=10, messages=_user(directive(malformed=True)))
    with pytest.raises(json.JSONDecodeError):
        list(
            claude.messages.create(
                model="c", max_tokens=10, stream=True, messages=_user(directive(malformed=True))
            )
        )


def test_models_list_in_anthropic_shape(claude: anthropic.Anthropic) -> None:
    models = list(claude.models.list())
    assert models
    assert models[0].type == "model"
    assert "emulator-demo" in [m.id for m in models]
