"""The unmodified Anthropic SDK through the gateway, against every provider adapter.

Each test drives ``POST /v1/messages`` with the official ``anthropic`` client
and checks what the SDK parsed, what the provider received (the emulator's
request log), and the audit row the gateway wrote.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import ToolParam

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
WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
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
        assert "system" not in body
        assert body["messages"][0] == {"role": "system", "content": system}
        assert [m["role"] for m in body["messages"]].count("system") == 1


# --- 1. non-streaming text -------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_text_message(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    token = gateway.token()
    client = gateway.anthropic(token)
    prompt = f"Say hello to {marker}"  # 4 words
    raw = client.messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system=SYSTEM,
        messages=[{"role": "user", "content": prompt}],
    )
    message = raw.parse()
    answer = f"Echo: {prompt}"  # 5 words

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == model
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == answer  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 5)

    row = gateway.audit_row(raw.headers["x-request-id"])
    assert (row.status, row.error_code, row.endpoint, row.stream) == (
        200,
        None,
        "anthropic",
        False,
    )
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
def test_x_api_key_header_is_accepted(
    gateway: Gateway, emulator: EmulatorServer, model: str
) -> None:
    """Anthropic-style ``x-api-key`` auth works too, and is not forwarded either."""
    marker = tag()
    token = gateway.token()
    with gateway.http() as http:
        response = http.post(
            "/v1/messages",
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
            json={
                "model": model,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": f"ping {marker}"}],
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["content"] == [{"type": "text", "text": f"Echo: ping {marker}"}]
    [sent] = upstream_requests(emulator, marker)
    assert_credentials(sent, model, token)


@pytest.mark.parametrize("model", MODELS)
def test_max_tokens_stop_reason(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    raw = gateway.anthropic().messages.with_raw_response.create(
        model=model,
        max_tokens=3,
        messages=[{"role": "user", "content": f"one two three four {marker}"}],
    )
    message = raw.parse()
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "Echo: one two"  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    row = gateway.audit_row(raw.headers["x-request-id"])
    assert (row.status, row.tokens_in, row.tokens_out) == (200, 5, 3)

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
    says so) and a streamed answer hands that count to the caller in message_delta. A
    non-streamed answer must report the same accounted numbers, not zeros."""
    client = gateway.anthropic()
    messages: list[Any] = [{"role": "user", "content": directive("one two three", usage=False)}]
    reported: dict[str, tuple[int, int]] = {}
    audited: dict[str, tuple[int, int]] = {}
    for model in MODELS:
        with client.messages.stream(model=model, max_tokens=50, messages=messages) as stream:
            final = stream.get_final_message()
            row = gateway.audit_row(stream.response.headers["x-request-id"])
        assert row.tokens_estimated is True
        assert (final.usage.input_tokens, final.usage.output_tokens) == (
            row.tokens_in,
            row.tokens_out,
        )

        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=50, messages=messages
        )
        row = gateway.audit_row(raw.headers["x-request-id"])
        assert row.tokens_estimated is True
        audited[model] = (row.tokens_in, row.tokens_out)
        usage = raw.parse().usage
        reported[model] = (usage.input_tokens, usage.output_tokens)
    assert reported == audited


# --- 2. streaming text -----------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_stream_text(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    chunks = ["Hel", "lo, w", "orld", "!"]
    prompt = directive(f"stream please {marker}", chunks=chunks)  # 3 words count
    with gateway.anthropic().messages.stream(
        model=model,
        max_tokens=100,
        system=SYSTEM,
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        request_id = stream.response.headers["x-request-id"]
        deltas = list(stream.text_stream)
        final = stream.get_final_message()

    assert deltas == chunks
    assert final.model == model
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "Hello, world!"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (8, 2)

    row = gateway.audit_row(request_id)
    assert (row.status, row.stream, row.model, row.endpoint) == (200, True, model, "anthropic")
    assert (row.tokens_in, row.tokens_out, row.tokens_used) == (8, 2, 10)
    assert row.tokens_estimated is False
    assert row.cost_usd == pytest.approx(cost(model, 8, 2))
    assert row.response_chars == len("Hello, world!")

    [sent] = upstream_requests(emulator, marker)
    assert sent["body"]["stream"] is True
    assert_system_prompt(sent["body"], model, SYSTEM)


@pytest.mark.parametrize("model", MODELS)
def test_stream_max_tokens_stop_reason(gateway: Gateway, model: str) -> None:
    with gateway.anthropic().messages.stream(
        model=model,
        max_tokens=2,
        messages=[{"role": "user", "content": "one two three"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.content[0].text == "Echo: one"  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 2)


# --- 3. tool use -----------------------------------------------------------------


def assert_native_tools(body: dict[str, Any], model: str) -> None:
    """The tool definition reached the provider in the provider's own shape."""
    if UPSTREAM[model][0] == "anthropic":
        assert body["tools"] == [WEATHER_TOOL]
    else:
        [tool] = body["tools"]
        assert tool["type"] == "function"
        assert tool["function"] == {
            "name": WEATHER_TOOL["name"],
            "description": WEATHER_TOOL["description"],
            "parameters": WEATHER_TOOL["input_schema"],
        }


def assert_native_tool_result(body: dict[str, Any], model: str, call_id: str) -> None:
    """The tool call and its result reached the provider in the provider's own shape."""
    provider = UPSTREAM[model][0]
    assistant, result = body["messages"][-2:]
    if provider == "anthropic":
        [use] = [b for b in assistant["content"] if b["type"] == "tool_use"]
        assert (use["id"], use["name"], use["input"]) == (call_id, "get_weather", {"city": "Paris"})
        assert result["role"] == "user"
        [block] = result["content"]
        assert (block["type"], block["tool_use_id"]) == ("tool_result", call_id)
        assert block["content"] == "18 degrees and sunny"
    elif provider == "openai":
        [call] = assistant["tool_calls"]
        assert (call["id"], call["type"]) == (call_id, "function")
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        assert result == {
            "role": "tool",
            "tool_call_id": call_id,
            "content": "18 degrees and sunny",
        }
    else:
        [call] = assistant["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert call["function"]["arguments"] == {"city": "Paris"}
        assert (result["role"], result["content"]) == ("tool", "18 degrees and sunny")


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_round_trip(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    client = gateway.anthropic()
    messages: list[Any] = [
        {
            "role": "user",
            "content": directive(
                f"weather in Paris {marker}",
                tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            ),
        }
    ]
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=200, messages=messages, tools=[WEATHER_TOOL]
    )
    message = raw.parse()
    assert message.stop_reason == "tool_use"
    [use] = [b for b in message.content if b.type == "tool_use"]
    assert use.id
    assert use.name == "get_weather"
    assert use.input == {"city": "Paris"}
    assert gateway.audit_row(raw.headers["x-request-id"]).status == 200

    messages.append(
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}
    )
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees and sunny"}
            ],
        }
    )
    answer = client.messages.create(
        model=model, max_tokens=200, messages=messages, tools=[WEATHER_TOOL]
    )
    assert answer.stop_reason == "end_turn"
    assert [b.type for b in answer.content] == ["text"]
    assert answer.content[0].text == "Tool said: 18 degrees and sunny"  # type: ignore[union-attr]

    first, second = upstream_requests(emulator, marker)
    assert_native_tools(first["body"], model)
    assert_native_tools(second["body"], model)
    assert_native_tool_result(second["body"], model, use.id)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_use_accumulates(gateway: Gateway, model: str) -> None:
    arguments = {"city": "Paris", "units": "celsius", "days": 3}
    prompt = directive(
        "weather",
        reply="Let me check.",
        tool_calls=[{"name": "get_weather", "arguments": arguments}],
    )
    with gateway.anthropic().messages.stream(
        model=model,
        max_tokens=200,
        messages=[{"role": "user", "content": prompt}],
        tools=[WEATHER_TOOL],
    ) as stream:
        request_id = stream.response.headers["x-request-id"]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check."  # type: ignore[union-attr]
    use = final.content[1]
    assert use.type == "tool_use"
    assert use.id
    assert use.name == "get_weather"
    assert use.input == arguments
    row = gateway.audit_row(request_id)
    assert (row.status, row.stream) == (200, True)


# --- 4. errors -------------------------------------------------------------------

#: (id, directive keys, SDK exception, gateway status, gateway code)
UPSTREAM_FAILURES = [
    (
        "429",
        {"status": 429, "retry_after": 7},
        anthropic.RateLimitError,
        429,
        "upstream_rate_limited",
    ),
    ("500", {"status": 500}, anthropic.InternalServerError, 502, "upstream_error"),
    ("503", {"status": 503}, anthropic.ServiceUnavailableError, 503, "upstream_overloaded"),
    ("400", {"status": 400}, anthropic.BadRequestError, 400, "upstream_rejected_request"),
    (
        "malformed",
        {"malformed": True},
        anthropic.InternalServerError,
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
    exc_type: type[anthropic.APIStatusError],
    status: int,
    code: str,
) -> None:
    secret = f"SECRET-{tag()}"
    keys = {**keys, "error_message": f"upstream says {secret}", "reply": secret}
    with pytest.raises(exc_type) as excinfo:
        gateway.anthropic().messages.create(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": directive("hi", **keys)}],
        )
    exc = excinfo.value
    assert exc.status_code == status
    assert isinstance(exc.body, dict)
    assert exc.body["type"] == "error"
    assert exc.body["error"]["code"] == code
    assert secret not in exc.response.text
    if status == 429:
        assert exc.response.headers["retry-after"] == "7"
    request_id = exc.response.headers["x-request-id"]
    assert exc.body["request_id"] == request_id
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.model, row.endpoint) == (
        status,
        code,
        model,
        "anthropic",
    )


@pytest.mark.parametrize("model", MODELS)
def test_upstream_error_body_is_not_forwarded(gateway: Gateway, model: str) -> None:
    secret = f"SECRET-{tag()}"
    body = f'{{"error": {{"message": "key sk-live-123 {secret}"}}}}'
    with pytest.raises(anthropic.InternalServerError) as excinfo:
        gateway.anthropic().messages.create(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": directive("hi", status=500, error_body=body)}],
        )
    assert excinfo.value.status_code == 502
    assert secret not in excinfo.value.response.text
    assert "sk-live-123" not in excinfo.value.response.text


def test_anthropic_overloaded_529(gateway: Gateway) -> None:
    with pytest.raises(anthropic.ServiceUnavailableError) as excinfo:
        gateway.anthropic().messages.create(
            model="claude-emu",
            max_tokens=50,
            messages=[{"role": "user", "content": directive("hi", status=529)}],
        )
    assert excinfo.value.status_code == 503
    assert isinstance(excinfo.value.body, dict)
    assert excinfo.value.body["error"]["code"] == "upstream_overloaded"


def test_upstream_timeout(quick_timeout_gateway: Gateway) -> None:
    """A provider that never answers: 504 after the model's timeout (all three at once)."""
    gateway = quick_timeout_gateway
    client = gateway.anthropic()

    def call(model: str) -> anthropic.APIStatusError:
        with pytest.raises(anthropic.GatewayTimeoutError) as excinfo:
            client.messages.create(
                model=model,
                max_tokens=50,
                messages=[{"role": "user", "content": directive("hi", hang=True)}],
            )
        return excinfo.value

    with ThreadPoolExecutor(len(MODELS)) as pool:
        errors = dict(zip(MODELS, pool.map(call, MODELS), strict=True))
    for model, exc in errors.items():
        assert exc.status_code == 504, model
        assert isinstance(exc.body, dict)
        assert exc.body["error"]["code"] == "upstream_timeout"
        row = gateway.audit_row(exc.response.headers["x-request-id"])
        assert (row.status, row.error_code, row.model) == (504, "upstream_timeout", model)


@pytest.mark.parametrize("model", MODELS)
def test_stream_cut_midway(gateway: Gateway, model: str) -> None:
    chunks = ["alpha ", "beta ", "gamma ", "delta"]
    prompt = directive("hi", chunks=chunks, truncate_after=2)
    received: list[str] = []
    request_ids: list[str] = []
    client = gateway.anthropic()
    with (  # noqa: PT012 - the first deltas arrive before the error
        pytest.raises(anthropic.APIStatusError) as excinfo,
        client.messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": prompt}]
        ) as stream,
    ):
        request_ids.append(stream.response.headers["x-request-id"])
        received.extend(stream.text_stream)
    assert received == chunks[:2]
    exc = excinfo.value
    assert isinstance(exc.body, dict)
    assert exc.body["type"] == "error"
    assert exc.body["error"]["code"] == "upstream_stream_interrupted"
    row = gateway.audit_row(request_ids[0])
    assert (row.status, row.error_code, row.stream) == (502, "upstream_stream_interrupted", True)


def test_stream_cut_midway_wire_format(gateway: Gateway) -> None:
    """On the wire: the deltas, then ``event: error``, and no message_delta/message_stop."""
    prompt = directive("hi", chunks=["alpha ", "beta ", "gamma"], truncate_after=2)
    with gateway.http() as http:
        response = http.post(
            "/v1/messages",
            headers={"authorization": f"Bearer {gateway.token()}"},
            json={"model": "claude-emu", "max_tokens": 50, "stream": True,
                  "messages": [{"role": "user", "content": prompt}]},
        )  # fmt: skip
    assert response.status_code == 200
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[-1] == "error"
    assert "message_stop" not in names
    assert "message_delta" not in names
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    error = json.loads(data[-1])
    assert error["type"] == "error"
    assert error["error"]["code"] == "upstream_stream_interrupted"


def test_unknown_model(gateway: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as excinfo:
        gateway.anthropic().messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    exc = excinfo.value
    assert exc.status_code == 404
    assert isinstance(exc.body, dict)
    assert exc.body["error"]["type"] == "not_found_error"
    assert exc.body["error"]["code"] == "model_not_found"
    row = gateway.audit_row(exc.response.headers["x-request-id"])
    assert (row.status, row.error_code, row.model_requested) == (
        404,
        "model_not_found",
        unknown_model("no-such-model"),
    )


# --- 5. models -------------------------------------------------------------------


def test_models_list(gateway: Gateway) -> None:
    page = gateway.anthropic().models.list()
    models = list(page)
    assert sorted(m.id for m in models) == sorted(MODELS)
    assert all(m.type == "model" and m.display_name for m in models)
    assert page.has_more is False
    assert {page.first_id, page.last_id} <= set(MODELS)
