"""An agent loop through the real server and the official SDKs, its final answer checked.

The emulated model first asks for ``describe_instances``; the test runs the
"tool" (five stopped instances) and sends the result back; the model's final
answer is scripted in a directive after the tool result, concealed so that
the checker, which reads the whole conversation, cannot find the answer's
words there.
Under ``annotate`` a contradicting answer comes back with its verdict; under
``block`` it is refused, and with ``retry: 1`` the model is asked again and
its second answer is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.emulators.behaviour import conceal
from tests.e2e.conftest import (
    PRICING_YAML,
    Gateway,
    directive,
    routing_yaml,
    start_gateway,
    stop_gateway,
)

IDS = ["i-0a1b2c3d", "i-1b2c3d4e", "i-2c3d4e5f", "i-3d4e5f60", "i-4e5f6071"]
OUTPUT = json.dumps({"Instances": [{"InstanceId": i, "State": {"Name": "stopped"}} for i in IDS]})
DESCRIBE: Any = {
    "type": "function",
    "function": {
        "name": "describe_instances",
        "description": "List EC2 instances",
        "parameters": {"type": "object", "properties": {"state": {"type": "string"}}},
    },
}
QUESTION = "How many stopped EC2 instances do we have?"
WRONG = "You have 7 stopped instances."
RIGHT = "You have 5 stopped instances, for example i-0a1b2c3d and i-4e5f6071."


def _guardrails(action: str, retry: int) -> str:
    return f"""
guardrails:
  grounding:
    enabled: true
    max_unsupported_claims: 0
    confidence_threshold: 0.5
    action: {action}
    retry: {retry}
  validation:
    check_tool_output_match: true
    detect_contradictions: true
    flag_speculative_language: true
    blocked_phrases: ["I think", "probably", "might be", "I assume"]
"""


def _gateway(emulator: EmulatorServer, tmp: Path, action: str, retry: int) -> Gateway:
    config = tmp / "own-config"
    config.mkdir()
    (config / "routing_policies.yaml").write_text(routing_yaml(emulator.base_url))
    (config / "pricing.yaml").write_text(PRICING_YAML)
    (config / "guardrails.yaml").write_text(_guardrails(action, retry))
    return start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/gw.db", {"CONFIG_DIR": str(config)}
    )


@pytest.fixture(scope="module")
def annotating(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gateway = _gateway(emulator, tmp_path_factory.mktemp("annotate"), "annotate", 0)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


@pytest.fixture(scope="module")
def blocking(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gateway = _gateway(emulator, tmp_path_factory.mktemp("block"), "block", 1)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def _loop(client: openai.OpenAI, answer: str, then: str | None = None) -> list[Any]:
    """The agent loop up to the final request: ask, get the tool call, run the tool."""
    ask = directive(QUESTION, tool_calls=[{"name": "describe_instances",
                                           "arguments": {"state": "stopped"}}])  # fmt: skip
    messages: list[Any] = [{"role": "user", "content": ask}]
    first = client.chat.completions.create(model="gpt-emu", messages=messages, tools=[DESCRIBE])
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "describe_instances"
    script: dict[str, Any] = {"reply": conceal(answer)}
    if then is not None:
        script["then"] = {"reply": conceal(then)}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id,
         "content": OUTPUT},
        # The script goes last, apart from the tool's JSON, which stays as a tool writes it.
        {"role": "user", "content": f"Go on. [[emulate {json.dumps(script)}]]"},
    ]  # fmt: skip
    return messages


def test_a_contradicting_answer_is_annotated_and_a_grounded_one_passes(
    annotating: Gateway,
) -> None:
    client = annotating.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-emu", messages=_loop(client, WRONG), tools=[DESCRIBE]
    )
    assert raw.parse().choices[0].message.content == WRONG  # annotate: the answer goes out
    assert raw.headers["x-gateway-grounded"] == "false"
    verdict = json.loads(raw.http_response.text)["grounding"]
    assert verdict["grounded"] is False
    assert "contradiction" in verdict["failed"]
    [seven] = [c for c in verdict["claims"] if c["status"] == "contradicted"]
    assert WRONG[seven["start"] : seven["end"]].startswith("7")
    row = annotating.audit_row(raw.headers["x-request-id"])
    assert row.grounding is not None
    assert row.grounding.startswith("grounded=false")
    assert "i-0a1b2c3d" not in row.grounding  # counts and checks, never a value

    good = client.chat.completions.with_raw_response.create(
        model="gpt-emu", messages=_loop(client, RIGHT), tools=[DESCRIBE]
    )
    assert good.headers["x-gateway-grounded"] == "true"
    assert json.loads(good.http_response.text)["grounding"]["grounded"] is True


def test_a_streamed_answer_flows_and_its_verdict_is_the_last_chunk(annotating: Gateway) -> None:
    client = annotating.openai()
    chunks = list(
        client.chat.completions.create(
            model="gpt-emu", messages=_loop(client, WRONG), tools=[DESCRIBE], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == WRONG
    last = chunks[-1]
    assert last.choices == []
    assert (last.model_extra or {})["grounding"]["grounded"] is False


def test_the_anthropic_door_carries_the_verdict(annotating: Gateway) -> None:
    client = annotating.anthropic()
    ask = directive(QUESTION, tool_calls=[{"name": "describe_instances", "arguments": {}}])
    tool: Any = {"name": "describe_instances", "input_schema": {"type": "object"}}
    first = client.messages.create(
        model="claude-emu", max_tokens=100, tools=[tool],
        messages=[{"role": "user", "content": ask}],
    )  # fmt: skip
    [use] = [b for b in first.content if b.type == "tool_use"]
    script = f"Go on. [[emulate {json.dumps({'reply': conceal(WRONG)})}]]"
    messages: list[Any] = [
        {"role": "user", "content": ask},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": OUTPUT},
            {"type": "text", "text": script}]},
    ]  # fmt: skip
    raw = client.messages.with_raw_response.create(
        model="claude-emu", max_tokens=100, tools=[tool], messages=messages
    )
    assert json.loads(raw.http_response.text)["grounding"]["grounded"] is False


def test_block_refuses_and_the_retry_asks_again(blocking: Gateway) -> None:
    client = blocking.openai()
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.chat.completions.create(
            model="gpt-emu", messages=_loop(client, WRONG, then=WRONG), tools=[DESCRIBE]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "grounding_failed"
    assert "contradiction" in error["message"]
    assert "7" not in error["message"]  # the checks are named, never the content
    row = blocking.audit_row(refused.value.response.headers["x-request-id"])
    assert (row.status, row.error_code) == (422, "grounding_failed")
    assert row.grounding is not None
    assert row.grounding.endswith("retried")

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-emu", messages=_loop(client, WRONG, then=RIGHT), tools=[DESCRIBE]
    )
    assert raw.parse().choices[0].message.content == RIGHT  # the second, checked answer
    assert raw.headers["x-gateway-grounded"] == "true"
    row = blocking.audit_row(raw.headers["x-request-id"])
    assert row.grounding is not None
    assert row.grounding.startswith("grounded=true")
    assert row.grounding.endswith("retried")
    assert len(json.loads(row.attempts or "[]")) == 2


def test_the_grounding_api_checks_openai_messages(annotating: Gateway) -> None:
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "describe_instances", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": OUTPUT},
    ]  # fmt: skip
    headers = {"authorization": f"Bearer {annotating.token()}"}
    with httpx.Client(base_url=annotating.base_url) as http:
        bad = http.post("/api/v1/guardrails/grounding", headers=headers,
                        json={"messages": messages, "answer": WRONG})  # fmt: skip
        good = http.post("/api/v1/guardrails/grounding", headers=headers,
                         json={"messages": messages, "answer": RIGHT})  # fmt: skip
        wrong_option = http.post(
            "/api/v1/guardrails/grounding", headers=headers,
            json={"messages": messages, "answer": RIGHT, "options": {"threshold": 2}},
        )  # fmt: skip
    assert bad.status_code == 200
    assert bad.json()["grounded"] is False
    assert good.json()["grounded"] is True
    assert (wrong_option.status_code, wrong_option.json()["error"]["code"]) == (
        400, "invalid_field",
    )  # fmt: skip
    assert wrong_option.json()["error"]["message"].startswith("options.threshold:")
    row = annotating.audit_row(bad.headers["x-request-id"])
    assert row.endpoint == "guardrails.check"
    assert row.grounding is not None
    assert row.grounding.startswith("grounded=false")
