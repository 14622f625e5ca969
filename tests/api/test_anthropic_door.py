"""The Anthropic-compatible front door: wire -> canonical, canonical -> wire, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic.types as ant
import orjson
import pytest
from pydantic import TypeAdapter

from llm_gateway.api import anthropic as door
from llm_gateway.auth import Credentials
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
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
    Usage,
)
from llm_gateway.errors import (
    AuthenticationFailed,
    BodyTooLarge,
    GatewayError,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from llm_gateway.pipeline.context import ChatCall, RequestContext

USER = {"role": "user", "content": "hi"}
STREAM_EVENT = TypeAdapter(ant.RawMessageStreamEvent)


def parse(data: dict[str, Any]) -> ChatRequest:
    return door.parse_request(orjson.dumps(data))


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-test", "max_tokens": 256, "messages": [USER], **fields}


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


async def _no_body() -> bytes:
    return b""


def make_ctx(chat: ChatRequest | None = None) -> RequestContext:
    ctx = RequestContext(
        endpoint="anthropic",
        credentials=Credentials(),
        read_body=_no_body,
        payload=ChatCall(door.parse_request),
        request_id="req123",
    )
    ctx.chat = chat
    return ctx


def stream_of(
    *events: StreamEvent,
    model: str = "claude-test",
    input_tokens: int | None = None,
    error: GatewayError | None = None,
) -> EventStream:
    async def gen() -> AsyncIterator[StreamEvent]:
        for event in events:
            yield event
        if error is not None:
            raise error

    return EventStream(StreamStart(model, input_tokens), gen())  # type: ignore[arg-type]


async def sse_events(stream: EventStream) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every SSE event; each chunk must be one whole event."""
    out = []
    async for chunk in door.encode_stream(make_ctx(), stream):
        assert chunk.endswith(b"\n\n")
        assert chunk.count(b"\n\n") == 1
        event_line, data_line = chunk[:-2].decode().split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        out.append((event_line[len("event: ") :], json.loads(data_line[len("data: ") :])))
    return out


# --- parse_request: accepted shapes ----------------------------------------------------


def test_minimal_request() -> None:
    chat = parse(body())
    assert chat.model == "claude-test"
    assert chat.max_tokens == 256
    assert chat.messages == [Message(role="user", content=[TextPart("hi")])]
    assert chat.system is None
    assert chat.tools == []
    assert chat.tool_choice is None
    assert chat.stop == []
    assert chat.stream is False
    assert chat.user is None


def test_system_string_and_blocks() -> None:
    assert parse(body(system="Be terse.")).system == "Be terse."
    assert parse(body(system="")).system is None
    blocks = [
        {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
        text("Answer in French."),
    ]
    assert parse(body(system=blocks)).system == "You are helpful.\n\nAnswer in French."


def test_content_blocks_with_images() -> None:
    chat = parse(
        body(
            messages=[
                user(
                    text("what are these?"),
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
                )
            ]
        )
    )
    assert chat.messages == [
        Message(
            role="user",
            content=[
                TextPart("what are these?"),
                ImagePart(data="iVBOR", media_type="image/png"),
                ImagePart(url="https://x/cat.jpg"),
            ],
        )
    ]


def test_assistant_tool_use_blocks() -> None:
    chat = parse(
        body(
            messages=[
                USER,
                assistant(
                    text("Checking."),
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "Paris", "days": [1, 2]},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
                ),
            ]
        )
    )
    message = chat.messages[1]
    assert message.role == "assistant"
    assert message.content == [TextPart("Checking.")]
    assert [(c.id, c.name) for c in message.tool_calls] == [
        ("toolu_1", "weather"),
        ("toolu_2", "time"),
    ]
    assert json.loads(message.tool_calls[0].arguments) == {"city": "Paris", "days": [1, 2]}
    assert json.loads(message.tool_calls[1].arguments) == {}


def test_user_turn_with_tool_results_and_text_is_split() -> None:
    chat = parse(
        body(
            messages=[
                USER,
                assistant(
                    {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}},
                    {"type": "tool_use", "id": "toolu_2", "name": "b", "input": {}},
                    {"type": "tool_use", "id": "toolu_3", "name": "c", "input": {}},
                ),
                user(
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [text("line 1"), text("line 2")],
                        "is_error": True,
                    },
                    {"type": "tool_result", "tool_use_id": "toolu_3"},
                    text("Now summarise."),
                ),
            ]
        )
    )
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "tool", "tool", "user"]
    first, second, third, last = chat.messages[2:]
    assert first == Message(role="tool", content=[TextPart("18C")], tool_call_id="toolu_1")
    assert second.tool_call_id == "toolu_2"
    assert second.is_error is True
    assert second.content == [TextPart("line 1"), TextPart("line 2")]
    assert third == Message(role="tool", content=[TextPart("")], tool_call_id="toolu_3")
    assert last == Message(role="user", content=[TextPart("Now summarise.")])


def test_user_turn_with_only_tool_results_yields_no_user_message() -> None:
    chat = parse(
        body(
            messages=[
                USER,
                assistant({"type": "tool_use", "id": "t1", "name": "a", "input": {}}),
                user({"type": "tool_result", "tool_use_id": "t1", "content": "ok"}),
            ]
        )
    )
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool"]


def test_tool_result_with_image_content() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0"}}
    chat = parse(
        body(
            messages=[
                user({"type": "tool_result", "tool_use_id": "t1", "content": [text("see"), image]})
            ]
        )
    )
    assert chat.messages == [
        Message(
            role="tool",
            content=[TextPart("see"), ImagePart(data="R0", media_type="image/gif")],
            tool_call_id="t1",
        )
    ]


def test_thinking_blocks_are_dropped() -> None:
    chat = parse(
        body(
            messages=[
                USER,
                assistant(
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    text("Answer."),
                ),
            ]
        )
    )
    assert chat.messages[1] == Message(role="assistant", content=[TextPart("Answer.")])


def test_string_content_for_both_roles() -> None:
    chat = parse(body(messages=[USER, {"role": "assistant", "content": "hello"}]))
    assert chat.messages[1] == Message(role="assistant", content=[TextPart("hello")])


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, ToolChoice("auto")),
        ({"type": "auto", "disable_parallel_tool_use": True}, ToolChoice("auto")),
        ({"type": "any"}, ToolChoice("required")),
        ({"type": "none"}, ToolChoice("none")),
        ({"type": "tool", "name": "weather"}, ToolChoice("required", "weather")),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: ToolChoice) -> None:
    assert parse(body(tool_choice=choice)).tool_choice == expected


def test_tools_parameters_and_metadata() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    chat = parse(
        body(
            tools=[
                {"name": "weather", "description": "Get it", "input_schema": schema},
                {"type": "custom", "name": "noop", "input_schema": {"type": "object"}},
            ],
            stop_sequences=["\n\nHuman:", "END"],
            metadata={"user_id": "user-42"},
            temperature=0.7,
            top_p=0.9,
            top_k=40,
            stream=True,
        )
    )
    assert chat.tools == [
        ToolSpec("weather", "Get it", schema),
        ToolSpec("noop", None, {"type": "object"}),
    ]
    assert chat.stop == ["\n\nHuman:", "END"]
    assert chat.user == "user-42"
    assert chat.temperature == 0.7
    assert chat.top_p == 0.9
    assert chat.top_k == 40
    assert chat.stream is True


def test_metadata_without_user_id() -> None:
    assert parse(body(metadata={})).user is None


# --- parse_request: rejections -----------------------------------------------------------


def _blocks(*blocks: Any, role: str = "user") -> dict[str, Any]:
    return body(messages=[{"role": role, "content": list(blocks)}])


def _result(**fields: Any) -> dict[str, Any]:
    return _blocks({"type": "tool_result", "tool_use_id": "t1", **fields})


REJECTIONS: list[tuple[str, Any, str, str | None]] = [
    ("no-model", {"max_tokens": 5, "messages": [USER]}, "missing_field", "model"),
    ("no-max-tokens", {"model": "m", "messages": [USER]}, "missing_field", "max_tokens"),
    ("max-tokens-0", body(max_tokens=0), "invalid_field", "max_tokens"),
    ("max-tokens-string", body(max_tokens="5"), "invalid_field", "max_tokens"),
    ("no-messages", {"model": "m", "max_tokens": 5}, "missing_field", "messages"),
    ("messages-empty", body(messages=[]), "empty_messages", "messages"),
    ("message-not-object", body(messages=[1]), "invalid_field", "messages[0]"),
    ("role-system", body(messages=[{"role": "system", "content": "x"}]), "invalid_role",
     "messages[0].role"),
    ("role-tool", body(messages=[{"role": "tool", "content": "x"}]), "invalid_role",
     "messages[0].role"),
    ("content-number", body(messages=[{"role": "user", "content": 5}]), "invalid_field",
     "messages[0].content"),
    ("content-missing", body(messages=[{"role": "user"}]), "invalid_field",
     "messages[0].content"),
    ("block-not-object", _blocks("hi"), "invalid_field", "messages[0].content[0]"),
    ("block-document", _blocks({"type": "document", "source": {}}), "unsupported_content",
     "messages[0].content[0].type"),
    ("block-no-type", _blocks({"text": "x"}), "unsupported_content",
     "messages[0].content[0].type"),
    ("tool-use-in-user-turn",
     _blocks({"type": "tool_use", "id": "t", "name": "n", "input": {}}),
     "unsupported_content", "messages[0].content[0].type"),
    ("tool-result-in-assistant-turn",
     _blocks({"type": "tool_result", "tool_use_id": "t"}, role="assistant"),
     "unsupported_content", "messages[0].content[0].type"),
    ("text-number", _blocks({"type": "text", "text": 1}), "invalid_field",
     "messages[0].content[0].text"),
    ("image-no-source", _blocks({"type": "image"}), "invalid_field",
     "messages[0].content[0].source"),
    ("image-file-source", _blocks({"type": "image", "source": {"type": "file", "file_id": "f"}}),
     "unsupported_content", "messages[0].content[0].source.type"),
    ("image-no-data", _blocks({"type": "image", "source": {"type": "base64"}}),
     "missing_field", "messages[0].content[0].source.data"),
    ("image-no-url", _blocks({"type": "image", "source": {"type": "url"}}), "missing_field",
     "messages[0].content[0].source.url"),
    ("image-media-type-number",
     _blocks({"type": "image", "source": {"type": "base64", "data": "x", "media_type": 1}}),
     "invalid_field", "messages[0].content[0].source.media_type"),
    ("tool-use-no-id", _blocks({"type": "tool_use", "name": "n"}, role="assistant"),
     "missing_field", "messages[0].content[0].id"),
    ("tool-use-no-name", _blocks({"type": "tool_use", "id": "t"}, role="assistant"),
     "missing_field", "messages[0].content[0].name"),
    ("tool-use-string-input",
     _blocks({"type": "tool_use", "id": "t", "name": "n", "input": "{}"}, role="assistant"),
     "invalid_field", "messages[0].content[0].input"),
    ("tool-result-no-id", _blocks({"type": "tool_result", "content": "x"}), "missing_field",
     "messages[0].content[0].tool_use_id"),
    ("tool-result-content-number", _result(content=5), "invalid_field",
     "messages[0].content[0].content"),
    ("tool-result-is-error-string", _result(is_error="yes"), "invalid_field",
     "messages[0].content[0].is_error"),
    ("tool-result-inner-not-object", _result(content=["x"]), "invalid_field",
     "messages[0].content[0].content[0]"),
    ("tool-result-inner-text-number", _result(content=[{"type": "text", "text": 1}]),
     "invalid_field", "messages[0].content[0].content[0].text"),
    ("system-number", body(system=5), "invalid_field", "system"),
    ("system-block-not-object", body(system=["x"]), "invalid_field", "system[0]"),
    ("system-block-image", body(system=[{"type": "image"}]), "unsupported_content",
     "system[0].type"),
    ("system-block-text-number", body(system=[{"type": "text", "text": 1}]), "invalid_field",
     "system[0].text"),
    ("temperature-above-1", body(temperature=1.5), "invalid_field", "temperature"),
    ("top-p-above-1", body(top_p=1.01), "invalid_field", "top_p"),
    ("top-k-negative", body(top_k=-1), "invalid_field", "top_k"),
    ("top-k-float", body(top_k=1.5), "invalid_field", "top_k"),
    ("stop-sequences-numbers", body(stop_sequences=[1]), "invalid_field", "stop_sequences"),
    ("stream-string", body(stream="true"), "invalid_field", "stream"),
    ("metadata-string", body(metadata="u"), "invalid_field", "metadata"),
    ("metadata-user-number", body(metadata={"user_id": 5}), "invalid_field",
     "metadata.user_id"),
    ("tools-object", body(tools={}), "invalid_field", "tools"),
    ("tool-server", body(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
     "unsupported_tool", "tools[0].type"),
    ("tool-no-name", body(tools=[{"input_schema": {}}]), "missing_field", "tools[0].name"),
    ("tool-schema-list", body(tools=[{"name": "n", "input_schema": []}]), "invalid_field",
     "tools[0].input_schema"),
    ("tool-choice-string", body(tool_choice="auto"), "invalid_field", "tool_choice"),
    ("tool-choice-function", body(tool_choice={"type": "function"}), "invalid_field",
     "tool_choice.type"),
    ("tool-choice-no-name", body(tool_choice={"type": "tool"}), "missing_field",
     "tool_choice.name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "code", "param"),
    [pytest.param(data, code, param, id=name) for name, data, code, param in REJECTIONS],
)
def test_rejections(data: Any, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(data)
    assert (info.value.code, info.value.param) == (code, param)
    assert info.value.status == 400


def test_rejects_bad_image_source_inside_tool_result_naming_its_path() -> None:
    """The param must point at the image's source inside the tool_result's content."""
    image = {"type": "image", "source": {"type": "file", "file_id": "f"}}
    with pytest.raises(InvalidRequest) as info:
        parse(_result(content=[image]))
    assert info.value.code == "unsupported_content"
    assert info.value.param == "messages[0].content[0].content[0].source.type"


@pytest.mark.parametrize(
    "inner",
    [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
        {"type": "search_result", "source": "s", "title": "t", "content": [text("x")]},
        {"text": "no type"},
    ],
)
def test_rejects_unsupported_blocks_inside_tool_result(inner: dict[str, Any]) -> None:
    """Like unsupported blocks anywhere else, they must be refused, not silently dropped."""
    with pytest.raises(InvalidRequest) as info:
        parse(_result(content=[text("kept"), inner]))
    assert info.value.code == "unsupported_content"
    assert info.value.param == "messages[0].content[0].content[1].type"


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"", "invalid_json"), (b"{]", "invalid_json"), (b"[]", "invalid_json"),
     (b"\xc3\x28", "invalid_utf8")],
)  # fmt: skip
def test_undecodable_bodies(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        door.parse_request(raw)
    assert info.value.code == code


# --- encode_response -----------------------------------------------------------------------


def _message(response: ChatResponse) -> ant.Message:
    return ant.Message.model_validate(json.loads(door.encode_response(make_ctx(), response)))


def test_encode_text_response() -> None:
    message = _message(ChatResponse(model="claude-test", text="Hello!", usage=Usage(12, 4)))
    assert message.id == "msg_req123"
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-test"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    [block] = message.content
    assert isinstance(block, ant.TextBlock)
    assert block.text == "Hello!"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 4)


def test_encode_tool_call_response() -> None:
    message = _message(
        ChatResponse(
            model="m",
            text="Let me check.",
            tool_calls=[
                ToolCall("toolu_1", "weather", '{"city": "Paris"}'),
                ToolCall("toolu_2", "time", ""),
            ],
            finish_reason="tool_calls",
            usage=Usage(1, 2),
        )
    )
    assert message.stop_reason == "tool_use"
    text_block, first, second = message.content
    assert isinstance(text_block, ant.TextBlock)
    assert text_block.text == "Let me check."
    assert isinstance(first, ant.ToolUseBlock)
    assert isinstance(second, ant.ToolUseBlock)
    assert (first.id, first.name, first.input) == ("toolu_1", "weather", {"city": "Paris"})
    assert (second.id, second.name, second.input) == ("toolu_2", "time", {})


def test_encode_tool_calls_without_text_has_no_empty_text_block() -> None:
    message = _message(
        ChatResponse(model="m", tool_calls=[ToolCall("t", "f", "{}")], finish_reason="tool_calls")
    )
    assert [block.type for block in message.content] == ["tool_use"]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
     ("content_filter", "refusal")],
)  # fmt: skip
def test_encode_stop_reasons(finish: Any, expected: str) -> None:
    assert _message(ChatResponse(model="m", text="x", finish_reason=finish)).stop_reason == (
        expected
    )


def test_encode_response_without_usage_reports_zeros() -> None:
    message = _message(ChatResponse(model="m", text="x"))
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)


def test_encode_response_with_provider_tool_arguments_that_are_not_json() -> None:
    """A provider (e.g. OpenAI) can return tool-call arguments that are not valid JSON.

    That is not the caller's fault: encoding must not raise InvalidRequest (400,
    and uncaught by the front door because encoding happens after the pipeline).
    """
    response = ChatResponse(
        model="m", tool_calls=[ToolCall("call_1", "f", '{"a": 1')], finish_reason="tool_calls"
    )
    outcome = _encode_or_error(response)
    if isinstance(outcome, GatewayError):
        assert isinstance(outcome, UpstreamError), f"{type(outcome).__name__}: {outcome.code}"
    else:
        ant.Message.model_validate(json.loads(outcome))


def _encode_or_error(response: ChatResponse) -> bytes | GatewayError:
    try:
        return door.encode_response(make_ctx(), response)
    except GatewayError as exc:
        return exc


# --- encode_stream -----------------------------------------------------------------------


def _check_sequence(events: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Validate every event with the SDK and check the documented order and block indices."""
    for name, data in events:
        assert name == data["type"]
    typed = [STREAM_EVENT.validate_python(data) for name, data in events if name != "ping"]
    assert isinstance(typed[0], ant.RawMessageStartEvent)
    assert isinstance(typed[-1], ant.RawMessageStopEvent)
    assert isinstance(typed[-2], ant.RawMessageDeltaEvent)
    assert sum(isinstance(e, ant.RawMessageStartEvent) for e in typed) == 1
    assert sum(isinstance(e, ant.RawMessageDeltaEvent) for e in typed) == 1
    open_index: int | None = None
    next_index = 0
    for event in typed[1:-2]:
        if isinstance(event, ant.RawContentBlockStartEvent):
            assert open_index is None, "a block started before the previous one stopped"
            assert event.index == next_index
            open_index, next_index = event.index, next_index + 1
        elif isinstance(event, ant.RawContentBlockDeltaEvent):
            assert event.index == open_index
        elif isinstance(event, ant.RawContentBlockStopEvent):
            assert event.index == open_index
            open_index = None
        else:
            raise AssertionError(f"unexpected event {event.type} between blocks")
    assert open_index is None
    return typed


def _accumulate(typed: list[Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for event in typed:
        if isinstance(event, ant.RawContentBlockStartEvent):
            blocks.append(event.content_block.model_dump(exclude_none=True))
        elif isinstance(event, ant.RawContentBlockDeltaEvent):
            if isinstance(event.delta, ant.TextDelta):
                blocks[event.index]["text"] += event.delta.text
            elif isinstance(event.delta, ant.InputJSONDelta):
                partial[event.index] = partial.get(event.index, "") + event.delta.partial_json
        elif (
            isinstance(event, ant.RawContentBlockStopEvent)
            and blocks[event.index]["type"] == "tool_use"
        ):
            blocks[event.index]["input"] = json.loads(partial.get(event.index) or "{}")
    return blocks


async def test_stream_text_then_tool_calls() -> None:
    events = await sse_events(
        stream_of(
            TextDelta("Let me "),
            TextDelta("check."),
            ToolCallDelta(0, "", id="toolu_a", name="weather"),
            ToolCallDelta(0, '{"city":'),
            ToolCallDelta(0, ' "Paris"}'),
            ToolCallDelta(1, "", id="toolu_b", name="time"),
            StreamEnd("tool_calls", Usage(20, 7)),
            input_tokens=20,
        )
    )
    assert [name for name, _ in events][:2] == ["message_start", "ping"]
    typed = _check_sequence(events)
    start = typed[0]
    assert start.message.id == "msg_req123"
    assert start.message.model == "claude-test"
    assert start.message.content == []
    assert start.message.usage.input_tokens == 20
    assert _accumulate(typed) == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}},
    ]
    delta = typed[-2]
    assert delta.delta.stop_reason == "tool_use"
    assert delta.usage.output_tokens == 7


async def test_stream_text_after_tool_opens_a_new_block() -> None:
    events = await sse_events(
        stream_of(
            ToolCallDelta(0, "{}", id="t1", name="f"),
            TextDelta("done"),
            StreamEnd("stop"),
        )
    )
    typed = _check_sequence(events)
    assert _accumulate(typed) == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        {"type": "text", "text": "done"},
    ]


async def test_stream_without_content() -> None:
    events = await sse_events(stream_of(StreamEnd("length")))
    assert [name for name, _ in events] == ["message_start", "ping", "message_delta",
                                            "message_stop"]  # fmt: skip
    typed = _check_sequence(events)
    assert typed[-2].delta.stop_reason == "max_tokens"
    assert typed[-2].usage.output_tokens == 0


async def test_stream_error_mid_stream() -> None:
    error = UpstreamStatusError("the provider reported an error", code="upstream_overloaded")
    events = await sse_events(stream_of(TextDelta("partial"), error=error))
    names = [name for name, _ in events]
    assert names[-1] == "error"
    assert "message_stop" not in names
    _, data = events[-1]
    parsed = ant.ErrorResponse.model_validate(data)
    assert parsed.type == "error"
    assert parsed.error.type == "api_error"
    assert parsed.error.message == "the provider reported an error"
    assert data["error"]["code"] == "upstream_overloaded"
    assert data["request_id"] == "req123"


# --- error_body -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "type_"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (PermissionDenied("no"), "permission_error"),
        (ModelNotFound("where"), "not_found_error"),
        (RateLimited("slow"), "rate_limit_error"),
        (UpstreamTimeout("late"), "timeout_error"),
        (UpstreamStatusError("broken"), "api_error"),
        (ModelUnavailable("down"), "overloaded_error"),
        (InternalError("oops"), "api_error"),
    ],
)
def test_error_body(error: GatewayError, type_: str) -> None:
    data = door.error_body(error, "req9")
    parsed = ant.ErrorResponse.model_validate(data)
    assert parsed.error.type == type_
    assert parsed.error.message == error.message
    assert parsed.request_id == "req9"
    assert data["error"]["code"] == error.code


def test_error_body_too_large() -> None:
    # Anthropic documents 413 as ``request_too_large`` (the SDK's union lacks it).
    data = door.error_body(BodyTooLarge("too big"), "r")
    assert data == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "too big", "code": "body_too_large"},
        "request_id": "r",
    }
