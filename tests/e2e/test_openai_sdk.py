"""The unmodified OpenAI SDK through the gateway, against every provider adapter.

Each test drives ``POST /v1/chat/completions`` with the official ``openai``
client and checks three things: what the SDK parsed, what the provider
received (the emulator's request log), and the audit row the gateway wrote.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from llm_gateway.emulators import EmulatorServer
from llm_gateway.pipeline.authorize import unknown_model
from tests.e2e.conftest import MODELS, PROVIDER_KEY, Gateway, directive

#: gateway model -> (provider, upstream model) as configured by the harness.
UPSTREAM = {
    "gpt-emu": ("openai", "gpt-4o-mini"),
    "claude-emu": ("anthropic", "claude-sonnet-4-5"),
    "ollama-emu": ("ollama", "llama3.2"),
}
#: $ per million (input, output) tokens; ollama-emu is unpriced.
PRICES = {"gpt-emu": (1.0, 2.0), "claude-emu": (3.0, 15.0), "ollama-emu": (0.0, 0.0)}

SYSTEM = "You are a terse assistant."  # 5 words
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def tag() -> str:
    """A one-word marker that finds this test's request in the emulator's shared log."""
    return f"t{uuid.uuid4().hex[:12]}"


def upstream_requests(emulator: EmulatorServer, marker: str) -> list[dict[str, Any]]:
    """What the provider received for the requests whose body mentions ``marker``."""
    log = httpx.get(f"{emulator.base_url}/_emulator/requests", timeout=10).json()
    return [r for r in log if marker in json.dumps(r["body"])]


def cost(model: str, tokens_in: int, tokens_out: int) -> float:
    price_in, price_out = PRICES[model]
    return (tokens_in * price_in + tokens_out * price_out) / 1e6


def assert_credentials(request: dict[str, Any], model: str, caller_token: str) -> None:
    """The provider's own key went in its own header; the caller's JWT went nowhere."""
    headers = request["headers"]
    provider = UPSTREAM[model][0]
    if provider == "openai":
        assert headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    elif provider == "anthropic":
        assert headers["x-api-key"] == PROVIDER_KEY
        assert headers["anthropic-version"]
        assert "authorization" not in headers
    else:
        assert "authorization" not in headers
        assert "x-api-key" not in headers
    assert caller_token not in json.dumps(request)


def assert_system_prompt(body: dict[str, Any], model: str, system: str) -> None:
    """The system prompt sits where this provider expects it, and only there."""
    if UPSTREAM[model][0] == "anthropic":
        assert body["system"] == system
        assert all(m["role"] in ("user", "assistant") for m in body["messages"])
    else:
        assert body["messages"][0] == {"role": "system", "content": system}
        assert [m["role"] for m in body["messages"]].count("system") == 1


# --- 1. non-streaming text -------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_text_completion(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    token = gateway.token()
    client = gateway.openai(token)
    prompt = f"Say hello to {marker}"  # 4 words
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
    )
    completion = raw.parse()
    answer = f"Echo: {prompt}"  # 5 words

    assert completion.model == model
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == answer
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 5)
    assert completion.usage.total_tokens == 14

    request_id = raw.headers["x-request-id"]
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.endpoint, row.stream) == (200, None, "openai", False)
    assert (row.model, row.model_requested, row.user_id) == (model, model, "alice")
    assert (row.provider, row.upstream_model) == UPSTREAM[model]
    assert (row.tokens_in, row.tokens_out, row.tokens_used) == (9, 5, 14)
    assert row.tokens_estimated is False
    assert row.cost_usd == pytest.approx(cost(model, 9, 5))
    assert row.prompt_sha256 is not None
    assert len(row.prompt_sha256) == 64
    assert row.prompt_chars == len(SYSTEM) + len(prompt)
    assert row.response_sha256 is not None
    assert len(row.response_sha256) == 64
    assert row.response_chars == len(answer)

    [sent] = upstream_requests(emulator, marker)
    assert sent["body"]["model"] == UPSTREAM[model][1]
    assert_system_prompt(sent["body"], model, SYSTEM)
    assert_credentials(sent, model, token)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("limit_param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_the_answer(
    gateway: Gateway, emulator: EmulatorServer, model: str, limit_param: str
) -> None:
    marker = tag()
    completions = gateway.openai().chat.completions.with_raw_response
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"one two three four {marker}"}
    ]
    if limit_param == "max_tokens":
        raw = completions.create(model=model, messages=messages, max_tokens=3)
    else:
        assert limit_param == "max_completion_tokens"
        raw = completions.create(model=model, messages=messages, max_completion_tokens=3)
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == "Echo: one two"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 3)

    row = gateway.audit_row(raw.headers["x-request-id"])
    assert (row.status, row.tokens_in, row.tokens_out) == (200, 5, 3)
    assert row.response_chars == len("Echo: one two")

    [sent] = upstream_requests(emulator, marker)
    body = sent["body"]
    limit = {
        "openai": body.get("max_completion_tokens", body.get("max_tokens")),
        "anthropic": body.get("max_tokens"),
        "ollama": (body.get("options") or {}).get("num_predict"),
    }[UPSTREAM[model][0]]
    assert limit == 3


def test_usage_reported_matches_audit_when_provider_reports_none(gateway: Gateway) -> None:
    """A provider that reports no usage: the gateway counts the tokens itself (the audit row
    says so) and a streamed answer hands that count to the caller in its usage chunk. A
    non-streamed answer must report the same accounted numbers, not ``null`` or zeros."""
    client = gateway.openai()
    messages: list[Any] = [{"role": "user", "content": directive("one two three", usage=False)}]
    reported: dict[str, tuple[int, int] | None] = {}
    audited: dict[str, tuple[int, int]] = {}
    for model in MODELS:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        ) as response:
            usage = list(response.parse())[-1].usage
            row = gateway.audit_row(response.headers["x-request-id"])
        assert row.tokens_estimated is True
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (row.tokens_in, row.tokens_out)

        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
        row = gateway.audit_row(raw.headers["x-request-id"])
        assert row.tokens_estimated is True
        audited[model] = (row.tokens_in, row.tokens_out)
        completion_usage = raw.parse().usage
        reported[model] = (
            None
            if completion_usage is None
            else (completion_usage.prompt_tokens, completion_usage.completion_tokens)
        )
    assert reported == audited


# --- 2. streaming text -----------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_stream_text_with_usage(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    chunks = ["Hel", "lo, w", "orld", "!"]
    prompt = directive(f"stream please {marker}", chunks=chunks)  # 3 words count
    client = gateway.openai()
    with client.chat.completions.with_streaming_response.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        request_id = response.headers["x-request-id"]
        received = list(response.parse())

    deltas = [c.choices[0].delta.content for c in received if c.choices and c.choices[0].delta]
    assert [d for d in deltas if d] == chunks
    finishes = [c.choices[0].finish_reason for c in received if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    assert all(c.model == model for c in received)
    usage_chunks = [c for c in received if c.usage is not None]
    assert len(usage_chunks) == 1
    assert received[-1] is usage_chunks[0]
    assert usage_chunks[0].choices == []
    usage = usage_chunks[0].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (8, 2, 10)

    row = gateway.audit_row(request_id)
    assert (row.status, row.stream, row.model) == (200, True, model)
    assert (row.tokens_in, row.tokens_out, row.tokens_used) == (8, 2, 10)
    assert row.tokens_estimated is False
    assert row.cost_usd == pytest.approx(cost(model, 8, 2))
    assert row.response_chars == len("Hello, world!")

    [sent] = upstream_requests(emulator, marker)
    assert sent["body"]["stream"] is True
    assert_system_prompt(sent["body"], model, SYSTEM)


@pytest.mark.parametrize("model", MODELS)
def test_stream_without_include_usage_has_no_usage_chunk(gateway: Gateway, model: str) -> None:
    stream = gateway.openai().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "count to three"}],
        stream=True,
    )
    received = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == "Echo: count to three"
    assert all(c.usage is None for c in received)
    assert all(c.choices for c in received)


# --- 3. tool calls ---------------------------------------------------------------


def assert_native_tools(body: dict[str, Any], model: str) -> None:
    """The tool definition reached the provider in the provider's own shape."""
    function = WEATHER_TOOL["function"]
    if UPSTREAM[model][0] == "anthropic":
        assert body["tools"] == [
            {
                "name": function["name"],
                "description": function["description"],
                "input_schema": function["parameters"],
            }
        ]
    else:
        [tool] = body["tools"]
        assert tool["type"] == "function"
        assert tool["function"]["name"] == function["name"]
        assert tool["function"]["description"] == function["description"]
        assert tool["function"]["parameters"] == function["parameters"]


def assert_native_tool_result(body: dict[str, Any], model: str, call_id: str) -> None:
    """The tool call and its result reached the provider in the provider's own shape."""
    provider = UPSTREAM[model][0]
    messages = body["messages"]
    if provider == "anthropic":
        assistant, result = messages[-2], messages[-1]
        assert assistant["role"] == "assistant"
        [use] = [b for b in assistant["content"] if b["type"] == "tool_use"]
        assert (use["id"], use["name"], use["input"]) == (call_id, "get_weather", {"city": "Paris"})
        assert result["role"] == "user"
        [block] = result["content"]
        assert block["type"] == "tool_result"
        assert block["tool_use_id"] == call_id
        assert block["content"] == "18 degrees and sunny"
    elif provider == "openai":
        assistant, result = messages[-2], messages[-1]
        [call] = assistant["tool_calls"]
        assert call["id"] == call_id
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        assert result == {
            "role": "tool",
            "tool_call_id": call_id,
            "content": "18 degrees and sunny",
        }
    else:
        assistant, result = messages[-2], messages[-1]
        [call] = assistant["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert call["function"]["arguments"] == {"city": "Paris"}
        assert result["role"] == "tool"
        assert result["content"] == "18 degrees and sunny"


@pytest.mark.parametrize("model", MODELS)
def test_tool_call_round_trip(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    client = gateway.openai()
    messages: list[Any] = [
        {
            "role": "user",
            "content": directive(
                f"weather in Paris {marker}",
                tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            ),
        }
    ]
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    row = gateway.audit_row(raw.headers["x-request-id"])
    assert (row.status, row.model) == (200, model)

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"})
    answer = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content == "Tool said: 18 degrees and sunny"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.tool_calls is None

    first, second = upstream_requests(emulator, marker)
    assert_native_tools(first["body"], model)
    assert_native_tools(second["body"], model)
    assert_native_tool_result(second["body"], model, call.id)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_call_accumulates(gateway: Gateway, model: str) -> None:
    arguments = {"city": "Paris", "units": "celsius", "days": 3}
    prompt = directive("weather", tool_calls=[{"name": "get_weather", "arguments": arguments}])
    state = ChatCompletionStreamState()
    with gateway.openai().chat.completions.with_streaming_response.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        tools=[WEATHER_TOOL],
        stream=True,
    ) as response:
        request_id = response.headers["x-request-id"]
        for chunk in response.parse():
            state.handle_chunk(chunk)
    completion = state.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.id
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == arguments
    row = gateway.audit_row(request_id)
    assert (row.status, row.stream) == (200, True)


# --- 4. errors -------------------------------------------------------------------

#: (id, directive keys, SDK exception, gateway status, gateway code)
UPSTREAM_FAILURES = [
    ("429", {"status": 429, "retry_after": 7}, openai.RateLimitError, 429, "upstream_rate_limited"),
    ("500", {"status": 500}, openai.InternalServerError, 502, "upstream_error"),
    ("503", {"status": 503}, openai.InternalServerError, 503, "upstream_overloaded"),
    ("400", {"status": 400}, openai.BadRequestError, 400, "upstream_rejected_request"),
    (
        "malformed",
        {"malformed": True},
        openai.InternalServerError,
        502,
        "upstream_malformed_response",
    ),
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("keys", "exc_type", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in UPSTREAM_FAILURES],
)
def test_upstream_failure(
    gateway: Gateway,
    model: str,
    keys: dict[str, Any],
    exc_type: type[openai.APIStatusError],
    status: int,
    code: str,
) -> None:
    secret = f"SECRET-{tag()}"
    keys = {**keys, "error_message": f"upstream says {secret}", "reply": secret}
    with pytest.raises(exc_type) as excinfo:
        gateway.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": directive("hi", **keys)}]
        )
    exc = excinfo.value
    assert exc.status_code == status
    assert isinstance(exc.body, dict)
    assert exc.body["code"] == code
    assert secret not in exc.response.text
    if status == 429:
        assert exc.response.headers["retry-after"] == "7"
    request_id = exc.response.headers["x-request-id"]
    assert exc.body["request_id"] == request_id
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.model) == (status, code, model)


@pytest.mark.parametrize("model", MODELS)
def test_upstream_error_body_is_not_forwarded(gateway: Gateway, model: str) -> None:
    secret = f"SECRET-{tag()}"
    body = f"<html>Traceback: key=sk-live-123 {secret}</html>"
    with pytest.raises(openai.InternalServerError) as excinfo:
        gateway.openai().chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": directive("hi", status=500, error_body=body)}],
        )
    assert excinfo.value.status_code == 502
    assert secret not in excinfo.value.response.text
    assert "sk-live-123" not in excinfo.value.response.text


def test_anthropic_overloaded_529(gateway: Gateway) -> None:
    with pytest.raises(openai.InternalServerError) as excinfo:
        gateway.openai().chat.completions.create(
            model="claude-emu",
            messages=[{"role": "user", "content": directive("hi", status=529)}],
        )
    assert excinfo.value.status_code == 503
    assert isinstance(excinfo.value.body, dict)
    assert excinfo.value.body["code"] == "upstream_overloaded"
    row = gateway.audit_row(excinfo.value.response.headers["x-request-id"])
    assert (row.status, row.error_code) == (503, "upstream_overloaded")


@pytest.mark.parametrize("model", MODELS)
def test_failure_before_a_stream_starts_is_an_http_error(gateway: Gateway, model: str) -> None:
    with pytest.raises(openai.RateLimitError) as excinfo:
        gateway.openai().chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": directive("hi", status=429, retry_after=3)}],
            stream=True,
        )
    assert excinfo.value.status_code == 429
    assert excinfo.value.response.headers["retry-after"] == "3"
    row = gateway.audit_row(excinfo.value.response.headers["x-request-id"])
    assert (row.status, row.error_code, row.stream) == (429, "upstream_rate_limited", True)


def test_upstream_timeout(quick_timeout_gateway: Gateway) -> None:
    """A provider that never answers: 504 after the model's timeout (all three at once)."""
    gateway = quick_timeout_gateway
    client = gateway.openai()

    def call(model: str) -> openai.APIStatusError:
        with pytest.raises(openai.InternalServerError) as excinfo:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": directive("hi", hang=True)}]
            )
        return excinfo.value

    with ThreadPoolExecutor(len(MODELS)) as pool:
        errors = dict(zip(MODELS, pool.map(call, MODELS), strict=True))
    for model, exc in errors.items():
        assert exc.status_code == 504, model
        assert isinstance(exc.body, dict)
        assert exc.body["code"] == "upstream_timeout"
        row = gateway.audit_row(exc.response.headers["x-request-id"])
        assert (row.status, row.error_code, row.model) == (504, "upstream_timeout", model)


@pytest.mark.parametrize("model", MODELS)
def test_stream_cut_midway(gateway: Gateway, model: str) -> None:
    chunks = ["alpha ", "beta ", "gamma ", "delta"]
    prompt = directive("hi", chunks=chunks, truncate_after=2)
    received: list[str] = []
    request_ids: list[str] = []
    create = gateway.openai().chat.completions.with_streaming_response.create
    with (  # noqa: PT012 - the first deltas arrive before the error
        pytest.raises(openai.APIError) as excinfo,
        create(model=model, messages=[{"role": "user", "content": prompt}], stream=True) as resp,
    ):
        request_ids.append(resp.headers["x-request-id"])
        for chunk in resp.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == chunks[:2]
    exc = excinfo.value
    assert not isinstance(exc, openai.APIConnectionError)
    assert isinstance(exc.body, dict)
    assert exc.body["code"] == "upstream_stream_interrupted"
    row = gateway.audit_row(request_ids[0])
    assert (row.status, row.error_code, row.stream) == (502, "upstream_stream_interrupted", True)
    assert row.response_chars == len("alpha beta ")


def test_stream_cut_midway_wire_format(gateway: Gateway) -> None:
    """On the wire: the deltas, then one ``data: {"error": ...}`` event, and no ``[DONE]``."""
    prompt = directive("hi", chunks=["alpha ", "beta ", "gamma"], truncate_after=2)
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {gateway.token()}"},
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": prompt}],
                  "stream": True},
        )  # fmt: skip
    assert response.status_code == 200
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["code"] == "upstream_stream_interrupted"
    assert error["request_id"] == response.headers["x-request-id"]


def test_unknown_model(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as excinfo:
        gateway.openai().chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    exc = excinfo.value
    assert exc.status_code == 404
    assert isinstance(exc.body, dict)
    assert exc.body["code"] == "model_not_found"
    row = gateway.audit_row(exc.response.headers["x-request-id"])
    assert (row.status, row.error_code) == (404, "model_not_found")
    assert (row.model_requested, row.model) == (unknown_model("no-such-model"), None)


# --- 5. models -------------------------------------------------------------------


def test_models_list(gateway: Gateway) -> None:
    page = gateway.openai().models.list()
    models = list(page)
    assert sorted(m.id for m in models) == sorted(MODELS)
    assert all(m.object == "model" and m.owned_by for m in models)
