"""The OpenAI-compatible front door: wire -> canonical, canonical -> wire, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai.types.chat as oai
import orjson
import pytest
from openai.types.shared import ErrorObject

from llm_gateway.api import openai as door
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
    UpstreamRateLimited,
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


def make_ctx(chat: ChatRequest | None = None) -> RequestContext:
    ctx = RequestContext(
        endpoint="openai",
        credentials=Credentials(),
        read_body=_no_body,
        payload=ChatCall(door.parse_request),
        request_id="req123",
    )
    ctx.chat = chat
    return ctx


def stream_of(
    *events: StreamEvent, model: str = "gpt-test", error: GatewayError | None = None
) -> EventStream:
    async def gen() -> AsyncIterator[StreamEvent]:
        for event in events:
            yield event
        if error is not None:
            raise error

    return EventStream(StreamStart(model), gen())  # type: ignore[arg-type]


async def sse_data(ctx: RequestContext, stream: EventStream) -> list[str]:
    """The ``data`` of every event, checking each yielded chunk is one whole SSE event."""
    out = []
    async for chunk in door.encode_stream(ctx, stream):
        assert chunk.startswith(b"data: ")
        assert chunk.endswith(b"\n\n")
        assert chunk.count(b"\n\n") == 1
        out.append(chunk[len(b"data: ") : -2].decode())
    return out


# --- parse_request: accepted shapes ----------------------------------------------


def test_minimal_request_defaults() -> None:
    chat = parse(body())
    assert chat.model == "gpt-test"
    assert chat.messages == [Message(role="user", content=[TextPart("hi")])]
    assert chat.system is None
    assert chat.tools == []
    assert chat.tool_choice is None
    assert chat.max_tokens is None
    assert chat.temperature is None
    assert chat.stop == []
    assert chat.stream is False
    assert chat.include_usage is False
    assert chat.json_output is False
    assert chat.user is None


def test_content_part_array_with_text_and_images() -> None:
    chat = parse(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"},
                        },
                    ],
                    "name": "alice",
                }
            ]
        )
    )
    [message] = chat.messages
    assert message.role == "user"
    assert message.name == "alice"
    assert message.content == [
        TextPart("what is this?"),
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(data="/9j/4AAQ", media_type="image/jpeg"),
    ]
    assert message.text == "what is this?"


def test_system_and_developer_messages_are_collected_into_system() -> None:
    two_parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    chat = parse(
        body(
            messages=[
                {"role": "system", "content": "Be terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                USER,
                {"role": "system", "content": two_parts},
            ]
        )
    )
    assert chat.system == "Be terse.\n\nAnswer in French.\n\nab"
    assert [m.role for m in chat.messages] == ["user"]


def test_assistant_tool_calls_and_tool_results() -> None:
    arguments = '{ "city" : "Paris",  "unit": "c" }'  # kept verbatim, whitespace and all
    chat = parse(
        body(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": arguments},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "time"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "12:00"}],
                },
            ]
        )
    )
    assert chat.messages[1] == Message(
        role="assistant",
        content=[],
        tool_calls=[ToolCall("call_1", "weather", arguments), ToolCall("call_2", "time", "{}")],
    )
    assert chat.messages[2] == Message(
        role="tool", content=[TextPart("18C")], tool_call_id="call_1"
    )
    assert chat.messages[3].tool_call_id == "call_2"
    assert chat.messages[3].text == "12:00"


def test_assistant_text_and_refusal_parts() -> None:
    chat = parse(
        body(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Sure."},
                        {"type": "refusal", "refusal": "no"},
                    ],
                },
            ]
        )
    )
    assert chat.messages[1] == Message(role="assistant", content=[TextPart("Sure.")])


def test_sampling_and_output_parameters() -> None:
    chat = parse(
        body(
            max_tokens=50,
            max_completion_tokens=100,
            temperature=1.5,
            top_p=0.5,
            stop="END",
            seed=7,
            user="user-42",
            n=1,
            response_format={"type": "json_object"},
            # accepted and ignored
            logprobs=False,
            logit_bias={"50256": -100},
            frequency_penalty=0.1,
            presence_penalty=0.1,
            parallel_tool_calls=True,
        )
    )
    assert chat.max_tokens == 100  # max_completion_tokens wins
    assert chat.temperature == 1.5
    assert chat.top_p == 0.5
    assert chat.stop == ["END"]
    assert chat.seed == 7
    assert chat.user == "user-42"
    assert chat.json_output is True


def test_max_tokens_alone_and_stop_list() -> None:
    chat = parse(body(max_tokens=12, stop=["a", "b"], temperature=0))
    assert chat.max_tokens == 12
    assert chat.stop == ["a", "b"]
    assert chat.temperature == 0.0


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, False),
        ({"type": "json_object"}, True),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, True),
    ],
)
def test_response_format(response_format: dict[str, Any], expected: bool) -> None:
    assert parse(body(response_format=response_format)).json_output is expected


@pytest.mark.parametrize(
    ("fields", "stream", "include_usage"),
    [
        ({"stream": True}, True, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, True),
        ({"stream": True, "stream_options": {"include_usage": False}}, True, False),
        ({"stream": False, "stream_options": {"include_usage": True}}, False, False),
    ],
)
def test_stream_and_include_usage(
    fields: dict[str, Any], stream: bool, include_usage: bool
) -> None:
    chat = parse(body(**fields))
    assert chat.stream is stream
    assert chat.include_usage is include_usage


def test_tools() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    chat = parse(
        body(
            tools=[
                {
                    "type": "function",
                    "function": {"name": "weather", "description": "Get it", "parameters": schema},
                },
                {"function": {"name": "noop"}},
            ]
        )
    )
    assert chat.tools == [ToolSpec("weather", "Get it", schema), ToolSpec("noop", None, {})]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ({"type": "function", "function": {"name": "weather"}}, ToolChoice("required", "weather")),
    ],
)
def test_tool_choice(value: Any, expected: ToolChoice) -> None:
    assert parse(body(tool_choice=value)).tool_choice == expected


# --- parse_request: rejections -------------------------------------------------------


def _bad_part(part: Any, role: str = "user") -> dict[str, Any]:
    return body(messages=[{"role": role, "content": [part]}])


def _assistant(**fields: Any) -> dict[str, Any]:
    return body(messages=[{"role": "assistant", **fields}])


def _call(**fields: Any) -> dict[str, Any]:
    return _assistant(tool_calls=[fields])


REJECTIONS: list[tuple[str, Any, str, str | None]] = [
    # (id, body, code, param)
    ("no-model", {"messages": [USER]}, "missing_field", "model"),
    ("empty-model", body(model=""), "invalid_field", "model"),
    ("model-number", body(model=3), "invalid_field", "model"),
    ("no-messages", {"model": "m"}, "missing_field", "messages"),
    ("messages-object", body(messages={"role": "user"}), "invalid_field", "messages"),
    ("messages-empty", body(messages=[]), "empty_messages", "messages"),
    ("message-string", body(messages=["hi"]), "invalid_field", "messages[0]"),
    ("role-bad", body(messages=[{"role": "bot", "content": "x"}]), "invalid_role",
     "messages[0].role"),
    ("role-missing", body(messages=[{"content": "x"}]), "invalid_role", "messages[0].role"),
    ("content-missing", body(messages=[{"role": "user"}]), "missing_field",
     "messages[0].content"),
    ("content-number", body(messages=[{"role": "user", "content": 1}]), "invalid_field",
     "messages[0].content"),
    ("part-not-object", _bad_part("text"), "invalid_field", "messages[0].content[0]"),
    ("part-audio", _bad_part({"type": "input_audio", "input_audio": {}}), "unsupported_content",
     "messages[0].content[0].type"),
    ("image-in-system", _bad_part({"type": "image_url", "image_url": {"url": "u"}}, "system"),
     "unsupported_content", "messages[0].content[0].type"),
    ("image-in-assistant",
     _bad_part({"type": "image_url", "image_url": {"url": "u"}}, "assistant"),
     "unsupported_content", "messages[0].content[0].type"),
    ("image-in-tool", body(messages=[{"role": "tool", "tool_call_id": "c", "content": [
        {"type": "image_url", "image_url": {"url": "u"}}]}]), "unsupported_content",
     "messages[0].content[0].type"),
    ("image-url-missing", _bad_part({"type": "image_url", "image_url": {}}), "missing_field",
     "messages[0].content[0].image_url.url"),
    ("image-url-string", _bad_part({"type": "image_url", "image_url": "https://x"}),
     "invalid_field", "messages[0].content[0].image_url"),
    ("text-part-number", _bad_part({"type": "text", "text": 5}), "invalid_field",
     "messages[0].content[0].text"),
    ("name-number", body(messages=[{"role": "user", "content": "x", "name": 5}]),
     "invalid_field", "messages[0].name"),
    ("tool-no-id", body(messages=[USER, {"role": "tool", "content": "x"}]), "missing_field",
     "messages[1].tool_call_id"),
    ("tool-no-content", body(messages=[{"role": "tool", "tool_call_id": "c"}]), "missing_field",
     "messages[0].content"),
    ("tool-calls-object", _assistant(tool_calls={"id": "c"}), "invalid_field",
     "messages[0].tool_calls"),
    ("tool-call-string", _assistant(tool_calls=["c"]), "invalid_field",
     "messages[0].tool_calls[0]"),
    ("tool-call-no-id", _call(function={"name": "f", "arguments": "{}"}), "missing_field",
     "messages[0].tool_calls[0].id"),
    ("tool-call-no-function", _call(id="c"), "invalid_field",
     "messages[0].tool_calls[0].function"),
    ("tool-call-no-name", _call(id="c", function={"arguments": "{}"}), "missing_field",
     "messages[0].tool_calls[0].function.name"),
    ("tool-call-object-args", _call(id="c", function={"name": "f", "arguments": {"a": 1}}),
     "invalid_field", "messages[0].tool_calls[0].function.arguments"),
    ("n-2", body(n=2), "unsupported_parameter", "n"),
    ("n-0", body(n=0), "invalid_field", "n"),
    ("max-tokens-0", body(max_tokens=0), "invalid_field", "max_tokens"),
    ("max-tokens-bool", body(max_tokens=True), "invalid_field", "max_tokens"),
    ("max-tokens-float", body(max_tokens=10.5), "invalid_field", "max_tokens"),
    ("max-completion-string", body(max_completion_tokens="10"), "invalid_field",
     "max_completion_tokens"),
    ("temperature-high", body(temperature=2.5), "invalid_field", "temperature"),
    ("temperature-negative", body(temperature=-0.1), "invalid_field", "temperature"),
    ("temperature-string", body(temperature="hot"), "invalid_field", "temperature"),
    ("top-p-high", body(top_p=1.5), "invalid_field", "top_p"),
    ("stop-numbers", body(stop=[1, 2]), "invalid_field", "stop"),
    ("stop-object", body(stop={"a": 1}), "invalid_field", "stop"),
    ("seed-float", body(seed=1.5), "invalid_field", "seed"),
    ("stream-string", body(stream="yes"), "invalid_field", "stream"),
    ("stream-options-list", body(stream=True, stream_options=[]), "invalid_field",
     "stream_options"),
    ("include-usage-string", body(stream=True, stream_options={"include_usage": "yes"}),
     "invalid_field", "stream_options.include_usage"),
    ("tools-object", body(tools={"type": "function"}), "invalid_field", "tools"),
    ("tool-not-object", body(tools=["f"]), "invalid_field", "tools[0]"),
    ("tool-custom", body(tools=[{"type": "custom", "custom": {"name": "x"}}]),
     "unsupported_tool", "tools[0].type"),
    ("tool-no-function", body(tools=[{"type": "function"}]), "invalid_field",
     "tools[0].function"),
    ("tool-no-name", body(tools=[{"type": "function", "function": {}}]), "missing_field",
     "tools[0].function.name"),
    ("tool-params-list",
     body(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
     "invalid_field", "tools[0].function.parameters"),
    ("tool-description-number",
     body(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]),
     "invalid_field", "tools[0].function.description"),
    ("tool-choice-word", body(tool_choice="always"), "invalid_field", "tool_choice"),
    ("tool-choice-number", body(tool_choice=1), "invalid_field", "tool_choice"),
    ("tool-choice-no-function", body(tool_choice={"type": "function"}), "invalid_field",
     "tool_choice.function"),
    ("tool-choice-no-name", body(tool_choice={"type": "function", "function": {}}),
     "missing_field", "tool_choice.function.name"),
    ("response-format-xml", body(response_format={"type": "xml"}), "invalid_field",
     "response_format.type"),
    ("response-format-string", body(response_format="json"), "invalid_field",
     "response_format"),
    ("user-number", body(user=5), "invalid_field", "user"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "code", "param"),
    [pytest.param(data, code, param, id=name) for name, data, code, param in REJECTIONS],
)
def test_rejections(data: Any, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(data)
    error = info.value
    assert (error.code, error.param) == (code, param)
    assert error.status == 400
    assert error.message.startswith(f"{param}:") or error.message.startswith(f"{param}.")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"a string"', "invalid_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
    ],
)
def test_undecodable_bodies(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        door.parse_request(raw)
    assert info.value.code == code
    assert info.value.param is None


# --- encode_response -----------------------------------------------------------------


def _completion(response: ChatResponse) -> tuple[dict[str, Any], oai.ChatCompletion]:
    raw = door.encode_response(make_ctx(), response)
    data = json.loads(raw)
    return data, oai.ChatCompletion.model_validate(data)


def test_encode_text_response() -> None:
    data, completion = _completion(
        ChatResponse(model="gpt-test", text="Hello!", usage=Usage(10, 3))
    )
    assert completion.id == "chatcmpl-req123"
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert isinstance(completion.created, int)
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello!"
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        completion.usage.total_tokens,
    ) == (10, 3, 13)
    assert "tool_calls" not in data["choices"][0]["message"]


def test_encode_tool_call_response() -> None:
    calls = [
        ToolCall("call_a", "weather", '{"city": "Paris"}'),
        ToolCall("call_b", "time", "{}"),
    ]
    _, completion = _completion(
        ChatResponse(model="m", tool_calls=calls, finish_reason="tool_calls", usage=Usage(1, 2))
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    calls_made = [c for c in choice.message.tool_calls if c.type == "function"]
    got = [(c.id, c.type, c.function.name, c.function.arguments) for c in calls_made]
    assert got == [
        ("call_a", "function", "weather", '{"city": "Paris"}'),
        ("call_b", "function", "time", "{}"),
    ]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"),
     ("content_filter", "content_filter")],
)  # fmt: skip
def test_encode_finish_reasons(finish: Any, expected: str) -> None:
    _, completion = _completion(ChatResponse(model="m", text="x", finish_reason=finish))
    assert completion.choices[0].finish_reason == expected


def test_encode_response_without_usage() -> None:
    data, completion = _completion(ChatResponse(model="m", text="x"))
    assert data["usage"] is None
    assert completion.usage is None


# --- encode_stream -----------------------------------------------------------------

STREAM_EVENTS: tuple[StreamEvent, ...] = (
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallDelta(0, "", id="call_a", name="weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, ' "Paris"}'),
    ToolCallDelta(1, '{"tz": "UTC"}', id="call_b", name="time"),
    StreamEnd("tool_calls", Usage(20, 7)),
)


def _accumulate(chunks: list[oai.ChatCompletionChunk]) -> tuple[str, dict[int, dict[str, str]]]:
    text = ""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] = call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
    return text, calls


async def test_stream_with_include_usage() -> None:
    ctx = make_ctx(ChatRequest(model="gpt-test", messages=[], stream=True, include_usage=True))
    data = await sse_data(ctx, stream_of(*STREAM_EVENTS))
    assert data[-1] == "[DONE]"
    payloads = [json.loads(d) for d in data[:-1]]
    chunks = [oai.ChatCompletionChunk.model_validate(p) for p in payloads]
    assert {c.id for c in chunks} == {"chatcmpl-req123"}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"gpt-test"}
    assert len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"

    # The usage chunk is the last one, alone, with no choices; every other has usage null.
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (20, 7)
    assert usage_chunk.usage.total_tokens == 27
    assert all(p["usage"] is None for p in payloads[:-1])

    finish = [c.choices[0].finish_reason for c in chunks[:-1]]
    assert finish[-1] == "tool_calls"
    assert all(f is None for f in finish[:-1])

    text, calls = _accumulate(chunks)
    assert text == "Let me check."
    assert calls == {
        0: {"id": "call_a", "name": "weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_b", "name": "time", "arguments": '{"tz": "UTC"}'},
    }


async def test_stream_without_include_usage() -> None:
    ctx = make_ctx(ChatRequest(model="gpt-test", messages=[], stream=True))
    data = await sse_data(ctx, stream_of(TextDelta("Hi"), StreamEnd("stop", Usage(5, 1))))
    assert data[-1] == "[DONE]"
    payloads = [json.loads(d) for d in data[:-1]]
    for payload in payloads:
        oai.ChatCompletionChunk.model_validate(payload)
        assert "usage" not in payload
        assert len(payload["choices"]) == 1
    assert [p["choices"][0]["delta"].get("content") for p in payloads] == ["", "Hi", None]
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_with_no_chat_on_context_has_no_usage_chunk() -> None:
    data = await sse_data(make_ctx(None), stream_of(StreamEnd("length")))
    assert data[-1] == "[DONE]"
    payloads = [json.loads(d) for d in data[:-1]]
    assert all(p["choices"] for p in payloads)
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"


async def test_stream_error_mid_stream() -> None:
    ctx = make_ctx(ChatRequest(model="gpt-test", messages=[], stream=True, include_usage=True))
    error = UpstreamStreamInterrupted("the provider's stream ended early")
    data = await sse_data(ctx, stream_of(TextDelta("partial"), error=error))
    assert "[DONE]" not in data
    chunks = [json.loads(d) for d in data]
    oai.ChatCompletionChunk.model_validate(chunks[1])
    assert chunks[1]["choices"][0]["delta"]["content"] == "partial"
    last = chunks[-1]
    assert set(last) == {"error"}
    err = ErrorObject.model_validate(last["error"])
    assert err.code == "upstream_stream_interrupted"
    assert err.type == "api_error"
    assert err.message == "the provider's stream ended early"
    assert last["error"]["request_id"] == "req123"


# --- error_body ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "type_"),
    [
        (InvalidRequest("bad", param="messages[0]"), "invalid_request_error"),
        (BodyTooLarge("big"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (PermissionDenied("no"), "permission_error"),
        (ModelNotFound("where"), "invalid_request_error"),
        (RateLimited("slow"), "rate_limit_error"),
        (UpstreamRateLimited("slow"), "rate_limit_error"),
        (UpstreamTimeout("late"), "timeout_error"),
        (UpstreamStreamInterrupted("cut"), "api_error"),
        (ModelUnavailable("down"), "service_unavailable_error"),
        (InternalError("oops"), "server_error"),
    ],
)
def test_error_body(error: GatewayError, type_: str) -> None:
    data = door.error_body(error, "req9")
    assert set(data) == {"error"}
    err = ErrorObject.model_validate(data["error"])
    assert err.type == type_
    assert err.message == error.message
    assert err.code == error.code
    assert err.param == error.param
    assert data["error"]["request_id"] == "req9"


def test_a_json_schema_response_format_is_kept_for_the_provider() -> None:
    schema = {"name": "x", "schema": {"type": "object"}, "strict": True}
    request = parse(body(response_format={"type": "json_schema", "json_schema": schema}))
    assert request.json_schema == schema
    with pytest.raises(InvalidRequest) as info:
        parse(body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}))
    assert info.value.param == "response_format.json_schema.name"
