"""Limits while Redis is dead or dies: fail open for plain rates, closed for budgets, and
recover by themselves.

Each test runs a Redis server of its own on a free port, so that stopping it
disturbs nobody else. Every request must be answered (the client's timeout is
far above STATE_TIMEOUT_MS, so a hang fails the test); none may be a 500.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, free_port, start_gateway, stop_gateway, wait_for

TIERS = """
tiers:
  premium: {requests_per_minute: 1000, models: ["*"]}
  enterprise: {requests_per_minute: 1000, tokens_per_month: 10000000, models: ["*"]}
"""


class RedisServer:
    """A private ``redis-server`` that a test may stop and start again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed: the Redis outage tests need their own"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{message} (CI=true: it is required)")
            pytest.skip(message)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    try:
        yield server
    finally:
        server.stop()


def gateway_on(emulator: EmulatorServer, tmp: Path, port: int) -> Gateway:
    (tmp / "config").mkdir()
    (tmp / "config" / "rate_limits.yaml").write_text(TIERS)
    env = {
        "STATE_BACKEND": "redis",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "STATE_TIMEOUT_MS": "200",
        "RATE_LIMIT_PER_USER": "0",
    }
    return start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", env)


def ask(gw: Gateway, tier: str) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token(f'outage-{tier}', tier=tier)}"},
        json={"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def assert_degraded(gw: Gateway) -> None:
    rates_only, budgeted = ask(gw, "premium"), ask(gw, "enterprise")
    assert rates_only.status_code == 200  # fail open: a plain rate
    assert "x-ratelimit-limit-requests" not in rates_only.headers  # nothing was counted
    assert budgeted.status_code == 503  # fail closed: a scope with a budget
    error = budgeted.json()["error"]
    assert error["code"] == "limits_unavailable"
    assert budgeted.headers["retry-after"] == "1"
    assert gw.audit_row(budgeted.headers["x-request-id"]).error_code == "limits_unavailable"
    assert httpx.get(f"{gw.base_url}/ready").status_code == 503


def healthy(gw: Gateway) -> bool:
    for tier in ("premium", "enterprise"):
        answer = ask(gw, tier)
        if answer.status_code != 200 or answer.headers.get("x-ratelimit-limit-requests") != "1000":
            return False
    return httpx.get(f"{gw.base_url}/ready").status_code == 200


def assert_healthy(gw: Gateway) -> None:
    """Counted again, with no restart: a request or two just after Redis returns may still
    meet a pooled connection to the old server, and fail open, before the pool reconnects."""
    assert wait_for(lambda: healthy(gw), timeout_s=15)


def test_a_dead_redis_port_fails_open_and_closed_as_configured(
    emulator: EmulatorServer, tmp_path: Path, private_redis: RedisServer
) -> None:
    gw = gateway_on(emulator, tmp_path, private_redis.port)  # nothing listens there yet
    try:
        for _ in range(5):
            assert_degraded(gw)
        warnings = gw.logs().count("rate limits: the state store failed")
        assert warnings == 1  # once per interval, not once per request
        private_redis.start()
        assert_healthy(gw)  # no restart needed
    finally:
        stop_gateway(gw)


def test_redis_stopped_mid_run_degrades_and_recovers(
    emulator: EmulatorServer, tmp_path: Path, private_redis: RedisServer
) -> None:
    private_redis.start()
    gw = gateway_on(emulator, tmp_path, private_redis.port)
    try:
        assert_healthy(gw)
        private_redis.stop()
        assert_degraded(gw)
        private_redis.start()
        assert_healthy(gw)
    finally:
        stop_gateway(gw)
