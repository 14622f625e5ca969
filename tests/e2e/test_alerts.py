"""Alerts end to end: a gateway with ``config/alerts.yaml`` posts to a webhook receiver.

A prompt carrying an API key is blocked by DLP (the specification's rules), and
the Slack webhook on 127.0.0.1 receives a message naming the entity type and
the request id, never the key; a webhook that does not answer keeps no caller
waiting; the webhook's URL is nowhere in the gateway's log. A model whose calls
keep failing opens its circuit, and PagerDuty's webhook gets the trigger.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import PROVIDER_KEY, Gateway, directive, start_gateway, stop_gateway
from tests.e2e.dlp_support import API_KEY, SPEC_RULES, ask, pieces, tag
from tests.observability.receiver import Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("alerts")
    (tmp / "config").mkdir()
    shutil.copy(SPEC_RULES, tmp / "config" / "dlp_rules.yaml")
    (tmp / "config" / "alerts.yaml").write_text(
        "alerts:\n"
        "  dedup_seconds: 0\n"
        "  destinations:\n"
        "    security-slack:\n"
        "      format: slack\n"
        f"      url: '{receiver.url}'\n"
        "      events: [dlp_block]\n"
        "      timeout_seconds: 30\n"
    )
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db")
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def test_a_blocked_secret_reaches_slack_as_its_entity_type_never_its_value(
    gw: Gateway, receiver: Receiver
) -> None:
    before = len(receiver.received)
    reply = ask(gw, "openai", f"{tag()} deploy with my key {API_KEY} please")
    assert reply.status == 400, reply.body
    assert reply.error("openai")["code"] == "dlp_blocked"

    got = receiver.wait_for(before + 1)[before]
    assert got.path == f"/hooks/{receiver.token}"
    message = got.body
    assert "DLP blocked a request carrying API_KEY" in message["text"]
    assert reply.request_id in got.raw
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context"]
    for piece in [API_KEY, *pieces(API_KEY)]:
        assert piece not in got.raw
    assert receiver.token not in gw.logs()


def test_a_webhook_that_does_not_answer_keeps_no_caller_waiting(
    gw: Gateway, receiver: Receiver
) -> None:
    before = len(receiver.received)
    receiver.hold()
    try:
        reply = ask(gw, "anthropic", f"{tag()} the key is {API_KEY}")
        assert reply.status == 400, reply.body
        receiver.wait_for(before + 1)  # the alert went out, and is still unanswered...
        answered = receiver.answered
        second = ask(gw, "native", f"{tag()} once more: {API_KEY}")
        assert second.status == 400, second.body
        assert receiver.answered == answered  # ...while both callers had their answers
    finally:
        receiver.release()
    receiver.wait_for(before + 2)


# --- an opened circuit, to PagerDuty ------------------------------------------------------

ROUTING = """
routing:
  models:
    flaky:
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
    main: [flaky, good]
  circuit_breaker:
    enabled: true
    failure_rate_threshold: 50
    wait_duration_seconds: 600
"""
ACCESS = """
access:
  tiers:
    premium: {models: ["*"], features: [streaming]}
"""


def test_an_opened_circuit_reaches_pagerduty(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("alerts-breaker")
    (tmp / "config").mkdir()
    pagerduty = Receiver().start()
    (tmp / "config" / "alerts.yaml").write_text(
        "alerts:\n"
        "  source: gateway-e2e\n"
        "  destinations:\n"
        "    oncall:\n"
        "      format: pagerduty\n"
        f"      url: '{pagerduty.url}'\n"
        "      routing_key: e2e-routing-key\n"
        "      events: [breaker_open]\n"
    )
    routing = ROUTING.format(url=emulator.base_url, key=PROVIDER_KEY)
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gw.db", routing=routing,
                            access=ACCESS)  # fmt: skip
    try:
        failing = directive("hello", models={"flaky-upstream": {"status": 500}})
        with gateway.http() as http:
            for _ in range(10):  # the breaker's minimum calls, every one failed over to good
                answer = http.post(
                    "/v1/chat/completions",
                    json={"model": "main", "messages": [{"role": "user", "content": failing}]},
                    headers={"authorization": f"Bearer {gateway.token()}"},
                )
                assert answer.status_code == httpx.codes.OK, answer.text
        [got] = pagerduty.wait_for(1)
    finally:
        stop_gateway(gateway)
        pagerduty.stop()
    event = got.body
    assert (event["routing_key"], event["event_action"]) == ("e2e-routing-key", "trigger")
    assert event["dedup_key"] == "llm-gateway/breaker_open/flaky"
    payload = event["payload"]
    assert (payload["source"], payload["class"], payload["severity"]) == (
        "gateway-e2e", "breaker_open", "error",
    )  # fmt: skip
    assert payload["custom_details"]["model"] == "flaky"
    assert len(pagerduty.received) == 1
