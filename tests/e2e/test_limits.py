"""Rate limits and budgets through the real server, driven by the official SDKs.

The limiter's clock is moved (``time.time()`` plus an offset) so that a
window frees a second from now instead of a minute: the SDKs then wait out
our ``Retry-After`` for real and succeed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.tokens import quick_estimate
from tests.e2e.conftest import (
    Gateway,
    directive,
    frees_in,
    start_gateway,
    stop_gateway,
)

TIERS = """
tiers:
  premium:
    requests_per_minute: 1
    models: ["*"]
  enterprise:
    requests_per_minute: 1000
    tokens_per_month: {tokens}
    models: ["*"]
"""
BUDGET = 5000


@pytest.fixture(scope="module")
def limited(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("limited")
    (tmp / "config").mkdir()
    (tmp / "config" / "rate_limits.yaml").write_text(TIERS.format(tokens=BUDGET))
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        {"RATE_LIMIT_PER_USER": "0"},
    )  # fmt: skip
    try:
        yield gw
    finally:
        stop_gateway(gw)


def unique_user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


class Attempts:
    """An httpx response hook that notes each attempt's status and time."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, Any]] = []  # (status, when, headers)

    def __call__(self, response: httpx2.Response) -> None:
        self.seen.append((response.status_code, time.monotonic(), response.headers))


def test_openai_sdk_retries_our_429_and_succeeds_once_the_window_allows(
    limited: Gateway,
) -> None:
    token = limited.token(unique_user(), tier="premium")
    first = limited.openai(token).chat.completions.with_raw_response.create(
        model="gpt-emu", messages=[{"role": "user", "content": "one"}]
    )
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
    attempts = Attempts()
    client = openai.OpenAI(
        base_url=f"{limited.base_url}/v1", api_key=token, max_retries=3,
        http_client=httpx2.Client(event_hooks={"response": [attempts]}),
    )  # fmt: skip
    undo = frees_in(limited, 1.2)
    try:
        answer = client.chat.completions.create(
            model="gpt-emu", messages=[{"role": "user", "content": "two"}]
        )
    finally:
        undo()
    assert answer.choices[0].message.content
    statuses = [status for status, _, _ in attempts.seen]
    assert statuses == [429, 200]  # one wait, as long as we said: not the SDK's own backoff
    (_, refused_at, headers), (_, retried_at, _) = attempts.seen
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 1000 <= int(headers["retry-after-ms"]) <= 1200
    assert headers["retry-after"] == "2"
    assert retried_at - refused_at >= 1.0


def test_anthropic_sdk_retries_our_429_and_succeeds_once_the_window_allows(
    limited: Gateway,
) -> None:
    token = limited.token(unique_user(), tier="premium")
    first = limited.anthropic(token).messages.with_raw_response.create(
        model="claude-emu", max_tokens=50, messages=[{"role": "user", "content": "one"}]
    )
    assert first.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert first.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    attempts = Attempts()
    client = anthropic.Anthropic(
        base_url=limited.base_url, api_key=token, max_retries=3,
        http_client=httpx2.Client(event_hooks={"response": [attempts]}),
    )  # fmt: skip
    undo = frees_in(limited, 1.2)
    try:
        answer = client.messages.create(
            model="claude-emu", max_tokens=50, messages=[{"role": "user", "content": "two"}]
        )
    finally:
        undo()
    assert answer.content
    assert [status for status, _, _ in attempts.seen] == [429, 200]
    refused = attempts.seen[0][2]
    assert refused["anthropic-ratelimit-requests-remaining"] == "0"
    assert attempts.seen[1][1] - attempts.seen[0][1] >= 1.0


def test_a_refusal_is_the_doors_own_error_naming_the_scope(limited: Gateway) -> None:
    token = limited.token(unique_user(), tier="premium")
    limited.openai(token).chat.completions.create(
        model="gpt-emu", messages=[{"role": "user", "content": "one"}]
    )
    with pytest.raises(openai.RateLimitError) as oa:
        limited.openai(token).chat.completions.create(
            model="gpt-emu", messages=[{"role": "user", "content": "two"}]
        )
    error = oa.value.body
    assert isinstance(error, dict)
    assert error["code"] == "rate_limited"
    assert "user" in error["message"]
    with pytest.raises(anthropic.RateLimitError) as an:
        limited.anthropic(token).messages.create(
            model="claude-emu", max_tokens=10, messages=[{"role": "user", "content": "3"}]
        )
    assert an.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    row = limited.audit_row(oa.value.response.headers["x-request-id"])
    assert (row.status, row.error_code) == (429, "rate_limited")


def _limits(gw: Gateway, token: str) -> dict[str, Any]:
    with gw.http() as http:
        response = http.get("/api/v1/limits", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    (user,) = [s for s in response.json()["scopes"] if s["scope"] == "user"]
    return dict(user)


def test_a_token_budget_counts_json_streamed_and_cancelled_requests(limited: Gateway) -> None:
    token = limited.token(unique_user(), tier="enterprise")
    client = limited.openai(token)

    def used() -> int:
        return int(_limits(limited, token)["tokens_per_month"]["used"])

    assert used() == 0
    forced = directive("count me", usage={"input": 30, "output": 70})
    client.chat.completions.create(
        model="gpt-emu", max_tokens=100, messages=[{"role": "user", "content": forced}]
    )
    assert used() == 100  # settled with the real use, not the reservation
    stream = client.chat.completions.create(
        model="gpt-emu", max_tokens=100, stream=True,
        messages=[{"role": "user", "content": forced}],
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert used() == 200
    slow = directive("x", chunks=["word "] * 200, chunk_delay_ms=20)
    reserved = quick_estimate([slow]) + 2000
    cut = client.chat.completions.create(
        model="gpt-emu", max_tokens=2000, stream=True, messages=[{"role": "user", "content": slow}]
    )
    next(iter(cut))
    assert used() == 200 + reserved  # held while the stream runs
    cut.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while used() == 200 + reserved and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 200 < used() < 200 + reserved  # settled with what was sent before the cut


def test_a_token_budget_refuses_the_request_that_would_cross_it(limited: Gateway) -> None:
    token = limited.token(unique_user(), tier="enterprise")
    client = limited.openai(token)
    text = directive("spend", usage={"input": 1000, "output": 3000})
    client.chat.completions.create(
        model="gpt-emu", max_tokens=100, messages=[{"role": "user", "content": text}]
    )  # 4,000 of 5,000 used
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-emu", max_tokens=1000, messages=[{"role": "user", "content": "more"}]
        )
    body = info.value.body
    assert isinstance(body, dict)
    assert body["code"] == "token_budget_exceeded"
    assert info.value.response.headers["x-should-retry"] == "false"
    small = client.chat.completions.with_raw_response.create(
        model="gpt-emu", max_tokens=100, messages=[{"role": "user", "content": "less"}]
    )
    assert int(small.headers["x-ratelimit-remaining-tokens"]) < 1000


def _chat(gw: Gateway, token: str, forwarded_for: str) -> int:
    with gw.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {token}", "x-forwarded-for": forwarded_for},
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]},
        )
    return response.status_code


def test_a_spoofed_forwarded_for_does_not_change_the_ip_scope(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Each request is another user's; the peer (127.0.0.1) is not a trusted proxy.
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/data/gateway.db",
        {"RATE_LIMIT_PER_IP": "3"},
    )  # fmt: skip
    try:
        codes = [_chat(gw, gw.token(unique_user()), f"203.0.113.{i}") for i in range(5)]
    finally:
        stop_gateway(gw)
    assert codes == [200, 200, 200, 429, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_is_its_own_scope(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/data/gateway.db",
        {"RATE_LIMIT_PER_IP": "1", "TRUSTED_PROXIES": "127.0.0.0/8"},
    )  # fmt: skip
    try:
        token = gw.token(unique_user())
        assert _chat(gw, token, "198.51.100.1") == 200
        assert _chat(gw, token, "198.51.100.2") == 200
        assert _chat(gw, token, "198.51.100.1") == 429
        assert _chat(gw, token, "198.51.100.9, 127.0.0.5") == 200  # the nearest untrusted hop
    finally:
        stop_gateway(gw)


def test_rate_limit_enabled_false_leaves_the_stage_out(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/data/gateway.db",
        {"RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_PER_USER": "1"},
    )  # fmt: skip
    try:
        token = gw.token(unique_user())
        client = gw.openai(token)
        answers = [
            client.chat.completions.with_raw_response.create(
                model="gpt-emu", messages=[{"role": "user", "content": "hi"}]
            )
            for _ in range(3)
        ]
        assert all("x-ratelimit-limit-requests" not in a.headers for a in answers)
        with gw.http() as http:
            told = http.get("/api/v1/limits", headers={"authorization": f"Bearer {token}"})
        assert told.json() == {"enabled": False, "scopes": []}
    finally:
        stop_gateway(gw)
