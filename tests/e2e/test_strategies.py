"""Each strategy's promise, on the provider emulators through the real server.

The strategies' arithmetic is tested on its own in ``tests/routing``; here a
gateway serves ``auto`` with the strategy as its ``default_strategy`` and the
audit rows say which model served each request.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import PROVIDER_KEY, Gateway, directive, start_gateway, stop_gateway

ACCESS = """
access:
  tiers:
    premium: {models: ["*"], features: [streaming]}
    chooser: {models: ["*"], features: [streaming, routing_strategy]}
  deanonymize_roles: [admin]
"""


def _model(name: str, url: str, **fields: object) -> str:
    extra = "".join(f"      {k}: {v}\n" for k, v in fields.items())
    return (
        f"    {name}:\n      endpoint: {url}/v1\n      provider: openai\n"
        f"      upstream_model: {name}-up\n      api_key: {PROVIDER_KEY}\n{extra}"
    )


class MakeGateway(Protocol):
    def __call__(
        self,
        strategy: str,
        models: dict[str, dict[str, object]],
        extra: str = "",
        pricing: str = "",
        **env: str,
    ) -> Gateway: ...


@pytest.fixture
def make_gateway(emulator: EmulatorServer, tmp_path: Path) -> Iterator[MakeGateway]:
    started: list[Gateway] = []

    def make(strategy: str, models: dict[str, dict[str, object]], extra: str = "",
             pricing: str = "", **env: str) -> Gateway:  # fmt: skip
        config = tmp_path / f"config-{len(started)}"
        config.mkdir()
        body = "".join(_model(n, emulator.base_url, **f) for n, f in models.items())
        routing = f"routing:\n  default_strategy: {strategy}\n  models:\n{body}{extra}"
        (config / "routing_policies.yaml").write_text(routing)
        (config / "pricing.yaml").write_text(pricing or "models: {}\n")
        gateway = start_gateway(
            tmp_path / f"gw-{len(started)}", emulator.base_url,
            f"sqlite:///{tmp_path}/gw-{len(started)}.db", {"CONFIG_DIR": str(config), **env},
            access=ACCESS,
        )  # fmt: skip
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        stop_gateway(gateway)


def _served(gateway: Gateway, n: int, text: str = "hello") -> collections.Counter[str]:
    token = gateway.token(f"u-{uuid.uuid4().hex[:8]}")
    served: collections.Counter[str] = collections.Counter()
    with gateway.http() as http:
        for _ in range(n):
            answer = http.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": text}]},
                headers={"authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
            row = gateway.audit_row(answer.headers["x-request-id"])
            assert row.model is not None
            served[row.model] += 1
    return served


def test_weighted_splits_by_weight_exactly_over_whole_cycles(make_gateway: MakeGateway) -> None:
    gateway = make_gateway("weighted", {"heavy": {"weight": 3}, "light": {"weight": 1}})
    assert _served(gateway, 40) == {"heavy": 30, "light": 10}  # smooth WRR: exact per cycle


def test_round_robin_takes_turns(make_gateway: MakeGateway) -> None:
    gateway = make_gateway("round_robin", {"a": {}, "b": {}, "c": {}})
    assert _served(gateway, 30) == {"a": 10, "b": 10, "c": 10}


def test_least_latency_prefers_the_fast_model_and_still_probes_the_slow_one(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway("least_latency", {"fast": {}, "slow": {}})
    slow = directive("hello", models={"slow-up": {"latency_ms": 60}})
    served = _served(gateway, 60, slow)
    assert served["slow"] >= 1  # measured at least once (a model never tried goes first)
    assert served["fast"] >= 0.8 * 60  # epsilon explores one request in twenty


def test_least_connections_never_exceeds_max_concurrent(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        "least_connections", {"a": {"max_concurrent": 1}, "b": {"max_concurrent": 1}},
        ROUTING_BUSY_WAIT_MS="0",
    )  # fmt: skip
    token = gateway.token("burst")
    slow = directive("hello", latency_ms=800)

    def send(_: int) -> httpx.Response:
        return httpx.post(
            f"{gateway.base_url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": slow}]},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    ok = [a for a in answers if a.status_code == 200]
    busy = [a for a in answers if a.status_code == 503]
    assert (len(ok), len(busy)) == (2, 2)  # one in flight per model, the rest refused
    assert {a.json()["error"]["code"] for a in busy} == {"all_models_busy"}
    served = {gateway.audit_row(a.headers["x-request-id"]).model for a in ok}
    assert served == {"a", "b"}


PRICES = """
models:
  premium-model: {input_per_million: 10.0, output_per_million: 30.0}
  mid-model: {input_per_million: 1.0, output_per_million: 2.0}
  cheap-model: {input_per_million: 0.1, output_per_million: 0.2}
"""


def test_cost_optimized_picks_the_cheapest_model_of_the_quality_asked(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        "cost_optimized",
        {"premium-model": {"quality_tier": 3}, "mid-model": {"quality_tier": 2},
         "cheap-model": {"quality_tier": 1}},
        extra="  cost_optimized:\n    min_quality_tier: 2\n",
        pricing=PRICES,
    )  # fmt: skip
    assert _served(gateway, 5) == {"mid-model": 5}


def test_a_caller_the_policy_allows_may_name_the_strategy(make_gateway: MakeGateway) -> None:
    gateway = make_gateway("weighted", {"heavy": {"weight": 9}, "light": {"weight": 1}})

    def ask(tier: str, strategy: str) -> httpx.Response:
        with gateway.http() as http:
            return http.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
                headers={
                    "authorization": f"Bearer {gateway.token(tier=tier)}",
                    "x-gateway-strategy": strategy,
                },
            )

    turns = [ask("chooser", "round_robin") for _ in range(4)]
    rows = [gateway.audit_row(a.headers["x-request-id"]) for a in turns]
    assert {r.route for r in rows} == {"round_robin"}
    assert [r.model for r in rows].count("light") == 2  # in turns, not 9 to 1
    refused = ask("premium", "round_robin")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "policy_denied")
    wrong = ask("chooser", "fastest")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, "invalid_request")
    assert gateway.audit_row(wrong.headers["x-request-id"]).status == 400
