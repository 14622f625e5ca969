"""``GET /metrics`` after real requests: the counters and histograms move as the requests
dictate (an answer, a policy denial, a rate-limit refusal, tokens and cost), the gauges
read at scrape time are there, a token guards it when set, it is off when asked; and
``WORKERS=2`` adds both workers' counts up in every scrape.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, directive, routing_yaml, start_gateway, stop_gateway

TOKEN = "scrape-" + "s" * 24
PER_MINUTE = 3
BREAKER = """
  circuit_breaker:
    enabled: true
    failure_rate_threshold: 50
    wait_duration_seconds: 600
"""
MINIMUM_CALLS = 10  # the breaker's window needs this many calls before it opens
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for one not (yet) exposed, as Prometheus reads a counter."""
    return found.get((name, frozenset(labels.items())), 0.0)


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v for (n, have), v in found.items() if n == name and labels.items() <= dict(have).items()
    )


def scrape(gw: Gateway, token: str | None = TOKEN) -> Samples:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{gw.base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


@pytest.fixture(scope="module")
def metered(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("metrics")
    routing = routing_yaml(emulator.base_url) + BREAKER
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        {"METRICS_TOKEN": TOKEN, "METRICS_TENANT_LABEL": "true",
         "RATE_LIMIT_PER_USER": str(PER_MINUTE)},
        routing=routing,
    )  # fmt: skip
    try:
        yield gw
    finally:
        stop_gateway(gw)


def chat(gw: Gateway, token: str, model: str, text: str) -> int:
    try:
        gw.openai(token).chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_requests_move_the_counters_and_histograms_they_should(metered: Gateway) -> None:
    gw = metered
    before = scrape(gw)
    user = f"u-{uuid.uuid4().hex[:8]}"
    paying = gw.token(user, tenant="acme")
    spend = directive("spend, and mail jane.doe@example.com", usage={"input": 120, "output": 30})
    free = gw.token(f"f-{uuid.uuid4().hex[:8]}", tenant="acme", tier="free")
    codes = [chat(gw, paying, "gpt-emu", spend) for _ in range(PER_MINUTE)]
    codes.append(chat(gw, free, "gpt-emu", "hello"))  # the free tier may not use gpt-emu
    codes.append(chat(gw, paying, "gpt-emu", spend))  # one more than the minute allows
    assert codes == [200] * PER_MINUTE + [403, 429]
    after = scrape(gw)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"endpoint": "openai", "model": "gpt-emu", "status": "200", "error_code": ""}
    assert moved("llm_gateway_requests_total", **ok) == PER_MINUTE
    denied = {"endpoint": "openai", "model": "", "status": "403", "error_code": "policy_denied"}
    assert moved("llm_gateway_requests_total", **denied) == 1
    limited = {"endpoint": "openai", "model": "", "status": "429", "error_code": "rate_limited"}
    assert moved("llm_gateway_requests_total", **limited) == 1
    assert moved("llm_gateway_policy_denials_total", endpoint="openai", decision="deny") == 1
    rejected = {"endpoint": "openai", "error_code": "rate_limited"}
    assert moved("llm_gateway_rate_limit_rejections_total", **rejected) == 1

    by = {"model": "gpt-emu", "tenant": "acme"}
    assert moved("llm_gateway_tokens_total", direction="in", **by) == 120 * PER_MINUTE
    assert moved("llm_gateway_tokens_total", direction="out", **by) == 30 * PER_MINUTE
    cost = PER_MINUTE * (120 * 1.0 + 30 * 2.0) / 1_000_000  # the harness's pricing.yaml
    assert moved("llm_gateway_cost_usd_total", **by) == pytest.approx(cost)

    # DLP scanned the answered ones (the refused ones were refused before it).
    emails = {"entity": "EMAIL_ADDRESS", "direction": "request"}
    findings = "llm_gateway_dlp_findings_total"
    assert total(after, findings, **emails) - total(before, findings, **emails) == PER_MINUTE

    latency = {"endpoint": "openai", "model": "gpt-emu"}
    assert moved("llm_gateway_request_duration_seconds_count", **latency) == PER_MINUTE
    assert moved("llm_gateway_request_duration_seconds_sum", **latency) > 0
    assert moved("llm_gateway_request_duration_seconds_bucket", le="+Inf", **latency) == PER_MINUTE
    assert moved("llm_gateway_upstream_duration_seconds_count", model="gpt-emu") == PER_MINUTE
    # Each stage is timed on the way in: all of them for the answered requests; up to the
    # policy for the denied one, up to the limit for the limited one.
    stage, sent = "llm_gateway_stage_duration_seconds_count", len(codes)
    for name, passed in (("authenticate", sent), ("parse_request", sent),
                         ("authorize", sent - 1), ("limit", PER_MINUTE),
                         ("inspect", PER_MINUTE), ("route", PER_MINUTE)):  # fmt: skip
        assert moved(stage, stage=name) == passed, name
    upstream = {"model": "gpt-emu", "status": "200", "error_code": ""}
    assert moved("llm_gateway_upstream_attempts_total", **upstream) == PER_MINUTE

    # No user is a label; the scrapes are not requests: five were sent, five counted.
    assert not any(user in v for _, labels in after for _, v in labels)
    requests = "llm_gateway_requests_total"
    assert total(after, requests) - total(before, requests) == len(codes)


def test_a_stream_times_its_first_token_and_a_json_answer_does_not(metered: Gateway) -> None:
    gw = metered
    before = scrape(gw)
    token = gw.token(f"s-{uuid.uuid4().hex[:8]}")
    streamed = gw.openai(token).chat.completions.create(
        model="gpt-emu", stream=True,
        messages=[{"role": "user", "content": directive("a b c", chunk_delay_ms=20)}],
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert chat(gw, token, "gpt-emu", "hello") == 200
    after = scrape(gw)
    first = "llm_gateway_time_to_first_token_seconds"
    labels = {"endpoint": "openai", "model": "gpt-emu"}
    assert value(after, f"{first}_count", **labels) - value(before, f"{first}_count", **labels) == 1
    spent = value(after, f"{first}_sum", **labels) - value(before, f"{first}_sum", **labels)
    whole = "llm_gateway_request_duration_seconds_sum"
    assert 0 < spent < value(after, whole, **labels) - value(before, whole, **labels)


def test_the_gauges_are_read_at_scrape_time(metered: Gateway) -> None:
    gw, circuit = metered, "llm_gateway_circuit_breaker_state"
    found = scrape(gw)
    for model in ("gpt-emu", "claude-emu", "ollama-emu"):
        assert value(found, "llm_gateway_model_up", model=model, region="") == 1
        assert value(found, circuit, model=model, region="", state="closed") == 1
        assert value(found, circuit, model=model, region="", state="open") == 0
    assert ("llm_gateway_audit_backlog_rows", frozenset()) in found
    assert value(found, "llm_gateway_audit_spool_limit_bytes") == 1024 << 20
    assert ("llm_gateway_audit_spool_bytes", frozenset()) in found
    assert value(found, "llm_gateway_confirmations_pending") == 0

    failing = directive("fail", status=503)
    codes = {
        chat(gw, gw.token(f"b-{uuid.uuid4().hex[:8]}"), "claude-emu", failing)
        for _ in range(MINIMUM_CALLS)
    }
    assert 200 not in codes
    after = scrape(gw)
    assert value(after, circuit, model="claude-emu", region="", state="open") == 1
    assert value(after, circuit, model="claude-emu", region="", state="closed") == 0
    assert value(after, circuit, model="gpt-emu", region="", state="closed") == 1
    failed = {"model": "claude-emu", "status": "503"}
    assert total(after, "llm_gateway_upstream_attempts_total", **failed) == MINIMUM_CALLS


def test_the_token_guards_the_endpoint(metered: Gateway) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        response = httpx.get(f"{metered.base_url}/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"
    assert httpx.get(f"{metered.base_url}/health").status_code == 200  # still open


def test_metrics_can_be_switched_off(emulator: EmulatorServer, tmp_path: Path) -> None:
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/data/gateway.db",
        {"METRICS_ENABLED": "false"},
    )  # fmt: skip
    try:
        assert chat(gw, gw.token(), "gpt-emu", "hello") == 200
        response = httpx.get(f"{gw.base_url}/metrics")
    finally:
        stop_gateway(gw)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_two_workers_are_added_up_in_every_scrape(emulator: EmulatorServer, tmp_path: Path) -> None:
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/data/gateway.db", {"WORKERS": "2"},
        process=True,
    )  # fmt: skip
    sent = 0
    try:
        # PROMETHEUS_MULTIPROC_DIR is unset: serve made a temporary directory, and says so.
        made = re.search(r"the workers share (\S+) \(a temporary directory\)", gw.logs())
        assert made is not None, gw.logs()
        shared = Path(made.group(1))
        # A new connection each, which either worker may accept, until both have counted
        # (each worker writes its counters to its own file, named by its pid).
        # The second worker may still be starting on a loaded machine: keep asking for a
        # while (a bound on waiting, not on how fast the gateway is).
        deadline = time.monotonic() + 120
        while len(writers(shared)) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=gw.base_url, timeout=30) as client:
                response = client.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {gw.token(f'w-{sent}')}"},
                    json={"model": "ollama-emu", "messages": [{"role": "user", "content": "hi"}]},
                )
            assert response.status_code == 200
            sent += 1
            time.sleep(0.05)
        scrapes = [scrape(gw, token=None) for _ in range(6)]  # answered by either worker
        counted = writers(shared)
    finally:
        stop_gateway(gw)
    assert len(counted) == 2
    assert not shared.exists()  # removed when the server exited
    ok = {"endpoint": "openai", "model": "ollama-emu", "status": "200", "error_code": ""}
    assert [value(s, "llm_gateway_requests_total", **ok) for s in scrapes] == [sent] * 6
    latency = {"endpoint": "openai", "model": "ollama-emu"}
    counts = [value(s, "llm_gateway_request_duration_seconds_count", **latency) for s in scrapes]
    assert counts == [sent] * 6


def writers(shared: Path) -> set[str]:
    return {p.name for p in shared.glob("counter_*.db")}
