"""Stale-if-error through the real server: the last good answer when every model fails.

One gateway per test, with stale-if-error on, in front of an emulator of the
test's own that it stops to make every model fail (connection refused).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import (
    PROVIDER_KEY,
    Gateway,
    start_gateway,
    stop_gateway,
    wait_for,
)

ROUTING = """
routing:
  models:
    gpt-emu:
      endpoint: {url}/v1
      provider: openai
      upstream_model: gpt-4o-mini
      api_key: {key}
      timeout_ms: 2000
  fallback_chains:
    main: [gpt-emu]
  stale_if_error:
    enabled: true
    ttl_seconds: 600
"""
ALLOW_MORE = """
access:
  tiers:
    premium: {models: [gpt-emu, main, claude-emu], features: [streaming]}
  deanonymize_roles: [admin]
"""
DENY = """
access:
  tiers:
    premium: {models: [claude-emu], features: [streaming]}
  deanonymize_roles: [admin]
"""
ACCESS = """
access:
  tiers:
    premium: {models: [gpt-emu, main], features: [streaming]}
  deanonymize_roles: [admin]
"""
QUESTION: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def upstream() -> Iterator[EmulatorServer]:
    server = EmulatorServer(api_key=PROVIDER_KEY).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cached(upstream: EmulatorServer, tmp_path: Path) -> Iterator[Gateway]:
    config = tmp_path / "own-config"
    config.mkdir()
    (config / "routing_policies.yaml").write_text(
        ROUTING.format(url=upstream.base_url, key=PROVIDER_KEY)
    )
    gateway = start_gateway(
        tmp_path,
        upstream.base_url,
        f"sqlite:///{tmp_path}/gw.db",
        {"CONFIG_DIR": str(config), "POLICY_RELOAD_SECONDS": "0.1"},
    )
    (Path(gateway.env["POLICY_DIR"]) / "data" / "access.yaml").write_text(ACCESS)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def _client(gateway: Gateway, tenant: str, user: str | None = None) -> openai.OpenAI:
    token = gateway.token(user or f"u-{uuid.uuid4().hex[:8]}", tier="premium", tenant=tenant)
    return gateway.openai(token)


def _ask(client: openai.OpenAI, model: str = "main") -> openai.types.chat.ChatCompletion:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION)
    completion = raw.parse()
    completion.headers = raw.headers  # type: ignore[attr-defined]
    return completion


def _status(client: openai.OpenAI) -> int:
    """The status the caller sees; a stale answer counts as the 200 it is."""
    try:
        _ask(client)
    except openai.APIStatusError as error:
        return error.status_code
    return 200


def _answered_then_down(client: openai.OpenAI, upstream: EmulatorServer) -> Any:
    """Once the test's policy is in force (it reloads every 0.1 s): one live answer, kept
    in the background; then the only model goes down."""
    assert wait_for(lambda: _status(client) == 200, timeout_s=10), "the policy was not loaded"
    live = _ask(client)
    time.sleep(0.2)  # the answer is kept in the background
    upstream.stop()
    return live


def test_when_every_model_fails_the_last_answer_is_served_marked_and_audited(
    cached: Gateway, upstream: EmulatorServer
) -> None:
    live = _answered_then_down(_client(cached, "acme"), upstream)
    assert live.headers.get("x-gateway-cache") is None
    stale = _ask(_client(cached, "acme"))  # another user of the same tenant, same question
    assert stale.choices[0].message.content == live.choices[0].message.content
    assert stale.headers["x-gateway-cache"] == "stale"  # type: ignore[attr-defined]
    row = cached.audit_row(stale.headers["x-request-id"])  # type: ignore[attr-defined]
    assert (row.status, row.route, row.cost_usd) == (200, "stale", 0.0)
    assert '"upstream_unreachable"' in (row.attempts or "")


def test_another_tenant_never_gets_the_cached_answer(
    cached: Gateway, upstream: EmulatorServer
) -> None:
    _answered_then_down(_client(cached, "acme"), upstream)
    with pytest.raises(openai.APIStatusError) as failed:
        _ask(_client(cached, "globex"))
    assert failed.value.status_code == 502
    assert failed.value.response.headers.get("x-gateway-cache") is None


def test_after_a_policy_change_nothing_cached_under_the_old_one_is_served(
    cached: Gateway, upstream: EmulatorServer
) -> None:
    client = _client(cached, "acme")
    _answered_then_down(client, upstream)
    access = Path(cached.env["POLICY_DIR"]) / "data" / "access.yaml"
    access.write_text(DENY)  # the caller is now denied: a 403, not the old answer
    assert wait_for(lambda: _status(client) == 403, timeout_s=10), "DENY was not loaded"
    access.write_text(ALLOW_MORE)  # allowed again, under a policy that never saw the answer
    assert wait_for(lambda: _status(client) != 403, timeout_s=10), "ALLOW_MORE was not loaded"
    with pytest.raises(openai.APIStatusError) as failed:
        _ask(client)  # never the old answer: that would not raise
    assert failed.value.status_code == 502
    assert failed.value.response.headers.get("x-gateway-cache") is None
