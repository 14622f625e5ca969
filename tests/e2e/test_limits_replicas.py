"""Three real gateway processes on one Redis: a limit holds exactly across them.

One burst, spread over the three replicas at once: the total admitted is the
limit, for requests per minute and for a token budget (reserved before the
call, so that concurrent requests through different replicas cannot overspend
together).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.tokens import quick_estimate
from tests.e2e.conftest import Gateway, directive, start_gateway, stop_gateway

RATE = 15
# Each budgeted request waits upstream long enough for every admission of the
# burst to be decided before any request settles its reservation.
SLOW = directive("budgeted", latency_ms=1500, usage={"input": 10, "output": 90})
MAX_TOKENS = 100
RESERVED = quick_estimate([SLOW]) + MAX_TOKENS
ADMITTED = 7
TIERS = f"""
tiers:
  premium: {{requests_per_minute: {RATE}, models: ["*"]}}
  enterprise: {{requests_per_minute: 10000, tokens_per_month: {ADMITTED * RESERVED}, models: ["*"]}}
"""


@pytest.fixture(scope="module")
def replicas(
    emulator: EmulatorServer, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Gateway]]:
    def start(i: int) -> Gateway:
        tmp = tmp_path_factory.mktemp(f"replica{i}")
        (tmp / "config").mkdir()
        (tmp / "config" / "rate_limits.yaml").write_text(TIERS)
        env = {"STATE_BACKEND": "redis", "REDIS_URL": redis_server_url, "RATE_LIMIT_PER_USER": "0"}
        return start_gateway(
            tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", env, process=True
        )

    with ThreadPoolExecutor(3) as pool:
        gateways = list(pool.map(start, range(3)))
    try:
        yield gateways
    finally:
        for gw in gateways:
            stop_gateway(gw)


def burst(gateways: list[Gateway], token: str, n: int, text: str, **body: object) -> list[int]:
    """``n`` requests at once, round robin over the replicas; their statuses."""

    def send(i: int) -> int:
        gw = gateways[i % len(gateways)]
        response = httpx.post(
            f"{gw.base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {token}"},
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": text}], **body},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(send, range(n)))


def test_requests_per_minute_hold_exactly_across_three_replicas(
    replicas: list[Gateway], tmp_path: Path
) -> None:
    token = replicas[0].token(f"burst-{uuid.uuid4().hex[:10]}", tier="premium")
    statuses = burst(replicas, token, 3 * RATE, "hello")
    assert statuses.count(200) == RATE
    assert statuses.count(429) == 2 * RATE


def test_a_token_budget_holds_exactly_across_three_replicas(replicas: list[Gateway]) -> None:
    token = replicas[0].token(f"budget-{uuid.uuid4().hex[:10]}", tier="enterprise")
    statuses = burst(replicas, token, 3 * ADMITTED, SLOW, max_tokens=MAX_TOKENS)
    assert statuses.count(200) == ADMITTED
    assert statuses.count(429) == 2 * ADMITTED
    # Settled with the real use (100 tokens each), what is left is seen by every replica.
    for gw in replicas:
        answer = httpx.get(
            f"{gw.base_url}/api/v1/limits", headers={"authorization": f"Bearer {token}"}
        ).json()
        (user,) = [s for s in answer["scopes"] if s["scope"] == "user"]
        assert user["tokens_per_month"]["used"] == ADMITTED * 100
