"""Confirmations on Redis: issued through one gateway process, confirmed through another,
and still there after both restart."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import (
    PRICING_YAML,
    Gateway,
    directive,
    routing_yaml,
    start_gateway,
    stop_gateway,
)

pytestmark = pytest.mark.redis

GUARDRAILS = """
guardrails:
  hitl:
    enabled: true
    confirmation_required:
      - pattern: "terminate"
        always: true
"""
IDS = ["i-1", "i-2", "i-3"]
ASK = directive(
    "Terminate the old instances",
    tool_calls=[{"name": "terminate_instances", "arguments": {"instance_ids": IDS}}],
)
TOOL: Any = {
    "type": "function",
    "function": {"name": "terminate_instances", "parameters": {"type": "object"}},
}


def _start(tmp: Path, emulator: EmulatorServer, redis_url: str) -> Gateway:
    config = tmp / "own-config"
    config.mkdir(exist_ok=True)
    (config / "routing_policies.yaml").write_text(routing_yaml(emulator.base_url))
    (config / "pricing.yaml").write_text(PRICING_YAML)
    (config / "guardrails.yaml").write_text(GUARDRAILS)
    env = {"CONFIG_DIR": str(config), "STATE_BACKEND": "redis", "REDIS_URL": redis_url}
    return start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gw.db", env, process=True)


def _say(gateway: Gateway, token: str, conversation: str, messages: list[Any]) -> Any:
    answer = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-emu", "messages": messages, "tools": [TOOL]},
        headers={"authorization": f"Bearer {token}", "x-conversation-id": conversation},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_challenge_from_one_replica_is_confirmed_through_another_after_a_restart(
    emulator: EmulatorServer, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dirs = [tmp_path_factory.mktemp(f"hitl{i}") for i in range(2)]
    first, second = (_start(d, emulator, redis_server_url) for d in dirs)
    token = first.token(f"u-{uuid.uuid4().hex[:8]}", tenant="acme")
    conversation = uuid.uuid4().hex
    try:
        held = _say(first, token, conversation, [{"role": "user", "content": ASK}])
        phrase = held["confirmation"]["phrase"]
        assert phrase == "confirm terminate 3 instances"
    finally:
        stop_gateway(first)
        stop_gateway(second)
    # Both replicas restart; the pending confirmation lives on in Redis.
    first, second = (_start(d, emulator, redis_server_url) for d in dirs)
    try:
        messages = [
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": held["choices"][0]["message"]["content"]},
            {"role": "user", "content": phrase},
        ]
        released = _say(second, token, conversation, messages)
        [call] = released["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == "terminate_instances"
        again = _say(first, token, conversation, messages)  # decided once, everywhere
        assert not again["choices"][0]["message"].get("tool_calls")
    finally:
        stop_gateway(first)
        stop_gateway(second)
