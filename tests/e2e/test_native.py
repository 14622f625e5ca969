"""The gateway's own front door, ``POST /api/v1/chat``, over plain HTTP to every provider.

Request ``{"model", "messages", "max_tokens"?, "temperature"?, "stream"?}``;
answer ``{"model", "response", "metadata": {...}}``, or with ``stream: true``
server-sent ``delta`` events, then ``done`` (or ``error``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

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


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.http() as client:
        client.headers["authorization"] = f"Bearer {gateway.token()}"
        yield client


def chat(http: httpx.Client, model: str, text: str, **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return http.post("/api/v1/chat", json=body)


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, decoded data) for each server-sent event."""
    events = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        name = next((ln[7:] for ln in lines if ln.startswith("event: ")), "message")
        data = "\n".join(ln[6:] for ln in lines if ln.startswith("data: "))
        events.append((name, json.loads(data)))
    return events


# --- 1. non-streaming text -------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_text_answer(gateway: Gateway, emulator: EmulatorServer, model: str) -> None:
    marker = tag()
    token = gateway.token()
    prompt = f"Say hello to {marker}"  # 4 words
    with gateway.http() as client:
        response = client.post(
            "/api/v1/chat",
            headers={"authorization": f"Bearer {token}"},
            json={
                "model": model,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0.2,
            },
        )
    assert response.status_code == 200, response.text
    answer = f"Echo: {prompt}"
    request_id = response.headers["x-request-id"]
    body = response.json()
    assert body["model"] == model
    assert body["response"] == answer
    metadata = body["metadata"]
    assert metadata["tokens_used"] == 14  # 9 in + 5 out
    assert metadata["cost"] == pytest.approx(cost(model, 9, 5))
    assert metadata["pii_detected"] is False
    assert metadata["pii_entities"] == []
    assert metadata["request_id"] == request_id

    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.endpoint, row.stream) == (200, None, "native", False)
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
    upstream_body, headers = sent["body"], sent["headers"]
    assert upstream_body["model"] == UPSTREAM[model][1]
    provider = UPSTREAM[model][0]
    if provider == "anthropic":
        assert upstream_body["system"] == SYSTEM
        assert upstream_body["temperature"] == 0.2
        assert headers["x-api-key"] == PROVIDER_KEY
        assert "authorization" not in headers
    else:
        assert upstream_body["messages"][0] == {"role": "system", "content": SYSTEM}
        if provider == "openai":
            assert upstream_body["temperature"] == 0.2
            assert headers["authorization"] == f"Bearer {PROVIDER_KEY}"
        else:
            assert upstream_body["options"]["temperature"] == 0.2
            assert "authorization" not in headers
    assert token not in json.dumps(sent)


@pytest.mark.parametrize("model", MODELS)
def test_usage_and_cost_come_from_the_provider(
    gateway: Gateway, http: httpx.Client, model: str
) -> None:
    """The provider's reported counts are used (not an estimate), and priced."""
    response = chat(http, model, directive("hi", usage={"input": 1200, "output": 345}))
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert metadata["tokens_used"] == 1545
    assert metadata["cost"] == pytest.approx(cost(model, 1200, 345))
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.tokens_in, row.tokens_out, row.tokens_estimated) == (1200, 345, False)
    assert row.cost_usd == pytest.approx(cost(model, 1200, 345))


@pytest.mark.parametrize("model", MODELS)
def test_max_tokens(gateway: Gateway, http: httpx.Client, model: str) -> None:
    response = chat(http, model, "one two three four five", max_tokens=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == "Echo: one two"
    assert body["metadata"]["tokens_used"] == 8  # 5 in + 3 out
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.tokens_in, row.tokens_out) == (5, 3)


# --- 2. streaming text -----------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_stream(gateway: Gateway, http: httpx.Client, model: str) -> None:
    chunks = ["Hel", "lo, w", "orld", "!"]
    response = chat(http, model, directive("stream please now", chunks=chunks), stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    request_id = response.headers["x-request-id"]
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names == ["delta"] * len(chunks) + ["done"]
    assert [data["text"] for name, data in events if name == "delta"] == chunks
    done = events[-1][1]
    assert done["model"] == model
    assert done["metadata"]["tokens_used"] == 5  # 3 in + 2 out
    assert done["metadata"]["cost"] == pytest.approx(cost(model, 3, 2))
    assert done["metadata"]["request_id"] == request_id

    row = gateway.audit_row(request_id)
    assert (row.status, row.stream, row.endpoint, row.model) == (200, True, "native", model)
    assert (row.tokens_in, row.tokens_out, row.tokens_estimated) == (3, 2, False)
    assert row.response_chars == len("Hello, world!")


# --- 4. errors -------------------------------------------------------------------

#: (id, directive keys, gateway status, gateway code)
UPSTREAM_FAILURES = [
    ("429", {"status": 429, "retry_after": 7}, 429, "upstream_rate_limited"),
    ("500", {"status": 500}, 502, "upstream_error"),
    ("503", {"status": 503}, 503, "upstream_overloaded"),
    ("400", {"status": 400}, 400, "upstream_rejected_request"),
    ("malformed", {"malformed": True}, 502, "upstream_malformed_response"),
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("keys", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in UPSTREAM_FAILURES],
)
def test_upstream_failure(
    gateway: Gateway, http: httpx.Client, model: str, keys: dict[str, Any], status: int, code: str
) -> None:
    secret = f"SECRET-{tag()}"
    keys = {**keys, "error_message": f"upstream says {secret}", "reply": secret}
    response = chat(http, model, directive("hi", **keys))
    assert response.status_code == status
    assert secret not in response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"]
    assert error["message"]
    request_id = response.headers["x-request-id"]
    assert error["request_id"] == request_id
    if status == 429:
        assert response.headers["retry-after"] == "7"
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.model, row.endpoint) == (status, code, model, "native")


@pytest.mark.parametrize("model", MODELS)
def test_upstream_error_body_is_not_forwarded(http: httpx.Client, model: str) -> None:
    secret = f"SECRET-{tag()}"
    body = f"upstream stack trace, api_key=sk-live-123 {secret}"
    response = chat(http, model, directive("hi", status=500, error_body=body))
    assert response.status_code == 502
    assert secret not in response.text
    assert "sk-live-123" not in response.text


def test_upstream_timeout(quick_timeout_gateway: Gateway) -> None:
    """A provider that never answers: 504 after the model's timeout (all three at once)."""
    gateway = quick_timeout_gateway

    def call(model: str) -> httpx.Response:
        with gateway.http() as http:
            http.headers["authorization"] = f"Bearer {gateway.token()}"
            return chat(http, model, directive("hi", hang=True))

    with ThreadPoolExecutor(len(MODELS)) as pool:
        responses = dict(zip(MODELS, pool.map(call, MODELS), strict=True))
    for model, response in responses.items():
        assert response.status_code == 504, model
        assert response.json()["error"]["code"] == "upstream_timeout"
        row = gateway.audit_row(response.headers["x-request-id"])
        assert (row.status, row.error_code, row.model) == (504, "upstream_timeout", model)


@pytest.mark.parametrize("model", MODELS)
def test_stream_cut_midway(gateway: Gateway, http: httpx.Client, model: str) -> None:
    chunks = ["alpha ", "beta ", "gamma ", "delta"]
    prompt = directive("hi", chunks=chunks, truncate_after=2)
    response = chat(http, model, prompt, stream=True)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["delta", "delta", "error"]
    assert [data["text"] for name, data in events if name == "delta"] == chunks[:2]
    error = events[-1][1]["error"]
    assert error["code"] == "upstream_stream_interrupted"
    assert error["request_id"] == response.headers["x-request-id"]
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.status, row.error_code, row.stream) == (502, "upstream_stream_interrupted", True)


def test_unknown_model(gateway: Gateway, http: httpx.Client) -> None:
    response = chat(http, "no-such-model", "hi")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["request_id"] == response.headers["x-request-id"]
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.status, row.error_code, row.model_requested) == (
        404,
        "model_not_found",
        unknown_model("no-such-model"),
    )
