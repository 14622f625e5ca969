"""Health checks and circuit breakers through real servers.

The checks' and the breaker's state machines are tested with a controlled
clock in ``tests/routing``; here the real gateway probes a real endpoint on
its timer, passes a down model over, and two gateway processes on one Redis
share a circuit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import (
    PROVIDER_KEY,
    Gateway,
    directive,
    free_port,
    start_gateway,
    stop_gateway,
    wait_for,
)

ADMIN_ACCESS = """
access:
  tiers:
    premium: {models: ["*"], features: [streaming]}
  deanonymize_roles: [admin]
"""


def _chat(gateway: Gateway, text: str = "hello", model: str = "main") -> httpx.Response:
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}]},
            headers={"authorization": f"Bearer {gateway.token()}"},
        )


def _endpoints(gateway: Gateway) -> dict[str, dict[str, Any]]:
    admin = gateway.token("ops", role="admin")
    with gateway.http() as http:
        body = http.get(
            "/api/v1/models/health", headers={"authorization": f"Bearer {admin}"}
        ).json()
    return {e["model"]: e for e in body["endpoints"]}


# --- health checks -----------------------------------------------------------------------

HEALTH_ROUTING = """
routing:
  models:
    late:
      endpoint: http://127.0.0.1:{port}/v1
      provider: openai
      upstream_model: late-upstream
      api_key: {key}
      health_check: {{enabled: true, interval_seconds: 0.1, failure_threshold: 2}}
    good:
      endpoint: {url}/v1
      provider: openai
      upstream_model: good-upstream
      api_key: {key}
  fallback_chains:
    main: [late, good]
"""


@pytest.fixture
def late_port() -> int:
    return free_port()


@pytest.fixture
def checked(emulator: EmulatorServer, late_port: int, tmp_path: Path) -> Iterator[Gateway]:
    routing = HEALTH_ROUTING.format(port=late_port, url=emulator.base_url, key=PROVIDER_KEY)
    gateway = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db", routing=routing,
        access=ADMIN_ACCESS,
    )  # fmt: skip
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def test_a_model_down_by_its_checks_is_passed_over_and_comes_back_when_it_answers(
    checked: Gateway, late_port: int
) -> None:
    assert wait_for(lambda: _endpoints(checked)["late"]["up"] is False, timeout_s=15)
    late = _endpoints(checked)["late"]
    assert (late["health_checked"], late["last_error"]) == (True, "upstream_unreachable")
    assert httpx.get(f"{checked.base_url}/ready").json()["checks"]["models"] == 1
    answer = _chat(checked)
    assert answer.status_code == 200
    row = checked.audit_row(answer.headers["x-request-id"])
    assert '"late"' not in (row.attempts or "")  # passed over: no attempt at all
    assert row.model == "good"

    upstream = EmulatorServer(api_key=PROVIDER_KEY, port=late_port).start_in_thread()
    try:  # the endpoint starts answering: one good probe brings it back
        assert wait_for(lambda: _endpoints(checked)["late"]["up"] is True, timeout_s=15)
        assert _chat(checked).status_code == 200
        assert checked.audit_row(_chat(checked).headers["x-request-id"]).model == "late"
    finally:
        upstream.stop()


def test_the_health_endpoint_is_for_administrators(checked: Gateway) -> None:
    with checked.http() as http:
        refused = http.get(
            "/api/v1/models/health", headers={"authorization": f"Bearer {checked.token()}"}
        )
    assert refused.status_code == 403
    good = _endpoints(checked)["good"]
    assert (good["health_checked"], good["up"], good["enabled"]) == (False, True, True)


# --- a circuit shared by two replicas ----------------------------------------------------

BREAKER_ROUTING = """
routing:
  models:
    {flaky}:
      endpoint: {url}/v1
      provider: openai
      upstream_model: flaky-upstream
      api_key: {key}
    good:
      endpoint: {url}/v1
      provider: openai
      upstream_model: good-upstream
      api_key: {key}
  fallback_chains:
    main: [{flaky}, good]
  circuit_breaker:
    enabled: true
    failure_rate_threshold: 50
    wait_duration_seconds: 600
    permitted_calls_in_half_open: 1
"""


@pytest.fixture
def replicas(
    emulator: EmulatorServer, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[Gateway], str]]:
    flaky = f"flaky-{uuid.uuid4().hex[:8]}"  # a circuit of this run's own, in the shared Redis
    routing = BREAKER_ROUTING.format(flaky=flaky, url=emulator.base_url, key=PROVIDER_KEY)
    gateways = []
    try:
        for i in range(2):
            tmp = tmp_path_factory.mktemp(f"breaker{i}")
            env = {"STATE_BACKEND": "redis", "REDIS_URL": redis_server_url}
            gateways.append(
                start_gateway(
                    tmp,
                    emulator.base_url,
                    f"sqlite:///{tmp}/gw.db",
                    env,
                    process=True,
                    routing=routing,
                    access=ADMIN_ACCESS,
                )
            )
        yield gateways, flaky
    finally:
        for gateway in gateways:
            stop_gateway(gateway)


@pytest.mark.redis
def test_a_circuit_opened_through_one_replica_is_open_for_the_other(
    replicas: tuple[list[Gateway], str],
) -> None:
    (first, second), flaky = replicas
    failing = directive("hello", models={"flaky-upstream": {"status": 500}})
    for _ in range(10):  # the breaker's minimum calls, every one failed
        answer = _chat(first, failing)
        assert answer.status_code == 200  # good answered each time
    assert _endpoints(first)[flaky]["circuit"] == "open"
    assert _endpoints(second)[flaky]["circuit"] == "open"
    answer = _chat(second)  # would succeed on flaky: but its circuit is open
    assert answer.status_code == 200
    row = second.audit_row(answer.headers["x-request-id"])
    assert (row.model, flaky in (row.attempts or "")) == ("good", False)
