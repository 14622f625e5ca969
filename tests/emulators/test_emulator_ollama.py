"""The Ollama emulator, driven over raw HTTP (Ollama's NDJSON has no official SDK here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

Directive = Callable[..., str]


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "llama3.2", "messages": [{"role": "user", "content": content}], **extra}


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_streams_ndjson_by_default(http: httpx.Client) -> None:
    response = http.post("/api/chat", json=_chat("red green blue"))  # no "stream" key at all
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = _lines(response)
    assert len(lines) == 5
    assert all(not line["done"] for line in lines[:-1])
    assert [line["message"]["content"] for line in lines[:-1]] == [
        "Echo: ",
        "red ",
        "green ",
        "blue",
    ]
    last = lines[-1]
    assert last["done"] is True
    assert last["done_reason"] == "stop"
    assert last["message"] == {"role": "assistant", "content": ""}
    assert (last["prompt_eval_count"], last["eval_count"]) == (3, 4)
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(last[key], int)
        assert last[key] > 0


def test_non_streaming_answer(http: httpx.Client) -> None:
    body = _chat("hi", stream=False)
    body["messages"].insert(0, {"role": "system", "content": "you are terse"})
    answer = http.post("/api/chat", json=body).json()
    assert answer["model"] == "llama3.2"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", answer["created_at"])
    assert answer["message"] == {"role": "assistant", "content": "Echo: hi"}
    assert answer["done"] is True
    assert answer["done_reason"] == "stop"
    assert (answer["prompt_eval_count"], answer["eval_count"]) == (4, 2)


def test_tool_calls_carry_object_arguments_and_round_trip(
    http: httpx.Client, directive: Directive
) -> None:
    ask = directive("weather?", tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    answer = http.post("/api/chat", json=_chat(ask, stream=False)).json()
    calls = answer["message"]["tool_calls"]
    assert calls[0]["function"]["name"] == "get_weather"
    assert calls[0]["function"]["arguments"] == {"city": "Rome"}  # an object, not a string
    assert answer["message"]["content"] == ""

    follow_up = {
        "model": "llama3.2",
        "stream": False,
        "messages": [
            {"role": "user", "content": ask},
            answer["message"],
            {"role": "tool", "content": "hot", "tool_name": "get_weather"},
        ],
    }
    second = http.post("/api/chat", json=follow_up).json()
    assert second["message"]["content"] == "Tool said: hot"
    assert "tool_calls" not in second["message"]


def test_streamed_tool_calls(http: httpx.Client, directive: Directive) -> None:
    ask = directive(tool_calls=[{"name": "f", "arguments": {"x": 1}}])
    lines = _lines(http.post("/api/chat", json=_chat(ask)))
    assert lines[0]["done"] is False
    assert lines[0]["message"]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert lines[-1]["done"] is True


def test_options_limit_the_answer(http: httpx.Client) -> None:
    answer = http.post(
        "/api/chat",
        json=_chat("a b c d", stream=False, options={"num_predict": 2, "temperature": 0}),
    ).json()
    assert answer["message"]["content"] == "Echo: a"
    assert answer["done_reason"] == "length"
    stopped = http.post(
        "/api/chat", json=_chat("a b STOP d", stream=False, options={"stop": ["STOP"]})
    ).json()
    assert stopped["message"]["content"] == "Echo: a b "
    assert stopped["done_reason"] == "stop"


def test_errors(http: httpx.Client, directive: Directive) -> None:
    missing = http.post("/api/chat", json=_chat(directive(status=404)))
    assert missing.status_code == 404
    assert missing.json() == {"error": 'model "llama3.2" not found, try pulling it first'}

    busy = http.post("/api/chat", json=_chat(directive(status=503, retry_after=1)))
    assert busy.status_code == 503
    assert "error" in busy.json()
    assert busy.headers["retry-after"] == "1"

    no_model = http.post("/api/chat", json={"messages": []})
    assert no_model.status_code == 400
    assert no_model.json() == {"error": "model is required"}
    bad_json = http.post("/api/chat", content=b"{")
    assert bad_json.status_code == 400
    assert "error" in bad_json.json()
    bad_content = http.post(
        "/api/chat",
        json={"model": "m", "messages": [{"role": "user", "content": ["not", "a", "string"]}]},
    )
    assert bad_content.status_code == 400


def test_empty_conversation_only_loads_the_model(http: httpx.Client) -> None:
    answer = http.post("/api/chat", json={"model": "llama3.2", "messages": []}).json()
    assert answer["done"] is True
    assert answer["done_reason"] == "load"


def test_in_band_stream_error(http: httpx.Client, directive: Directive) -> None:
    lines = _lines(
        http.post(
            "/api/chat",
            json=_chat(
                directive(
                    "x",
                    stream_error="runner_crashed",
                    error_message="llama runner process has terminated",
                )
            ),
        )
    )
    assert lines[-1] == {"error": "llama runner process has terminated"}
    assert not any(line.get("done") for line in lines)


def test_truncated_stream_drops_the_connection(http: httpx.Client, directive: Directive) -> None:
    lines: list[str] = []
    body = _chat(directive("a b c d", truncate_after=2))
    with (
        http.stream("POST", "/api/chat", json=body) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        lines.extend(response.iter_lines())
    received = [json.loads(line) for line in lines if line]
    assert [r["message"]["content"] for r in received] == ["Echo: ", "a "]
    assert not any(r["done"] for r in received)


def test_malformed_stream_line(http: httpx.Client, directive: Directive) -> None:
    text = http.post("/api/chat", json=_chat(directive(malformed=True))).text
    lines = [line for line in text.splitlines() if line]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])
    assert json.loads(lines[-1])["done"] is True


def test_health_routes(http: httpx.Client) -> None:
    tags = http.get("/api/tags").json()
    assert any(m["name"] == "emulator-demo:latest" for m in tags["models"])
    assert set(tags["models"][0]) >= {"name", "model", "modified_at", "size", "digest", "details"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", http.get("/api/version").json()["version"])
