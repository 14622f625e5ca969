"""Alerts: Slack and PagerDuty payloads at a real local webhook, de-duplication, rate limits,
retries, full queues, the periodic checks, and a request path that never waits on a webhook.

Every webhook here is :class:`tests.observability.receiver.Receiver` on 127.0.0.1,
reached through the gateway's own transport. Time is the tests' (a clock they move,
a sleep that only records how long it was asked to wait): nothing waits on the wall.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from llm_gateway.hitl.confirmations import Confirmations
from llm_gateway.observability.alerts import (
    AlertRecorder,
    Alerts,
    AlertSettings,
    Destination,
    breaker_listener,
    build_alerts,
)
from llm_gateway.observability.alerts.alert import Alert
from llm_gateway.observability.alerts.formats import dedup_key
from llm_gateway.observability.alerts.formats import slack as slack_message
from llm_gateway.observability.alerts.service import retry_after
from llm_gateway.observability.alerts.sources import StaleConfirmations
from llm_gateway.records import RequestRecord
from llm_gateway.routing.breaker import Breaker, BreakerRules
from llm_gateway.state import MemoryStore, Store, StoreUnavailable
from llm_gateway.transport import AiohttpTransport
from tests.hitl.support import NOW, pending_confirmation
from tests.observability.receiver import Receiver
from tests.state.cases import FakeClock

ROUTING_KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y00"


class Clock:
    def __init__(self, now: float = 5_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    """A sleep that waits for nothing and remembers each wait it was asked for."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport()
    try:
        yield t
    finally:
        await t.close()


def slack(r: Receiver, *events: str, **options: Any) -> Destination:
    return Destination("team-slack", "slack", r.url, frozenset(events or ("dlp_block",)),
                       **options)  # fmt: skip


def pagerduty(r: Receiver, *events: str, **options: Any) -> Destination:
    return Destination("oncall", "pagerduty", r.url, frozenset(events or ("breaker_open",)),
                       routing_key=ROUTING_KEY, **options)  # fmt: skip


def service(
    transport: AiohttpTransport, *destinations: Destination, clock: Clock | None = None,
    sleeps: Sleeps | None = None, shared: Store | None = None, wall: Clock | None = None,
    **settings: Any,
) -> Alerts:  # fmt: skip
    return Alerts(
        AlertSettings(destinations=destinations, source="gw-1", **settings), transport,
        clock=clock or Clock(), wall=wall or Clock(1_800_000_000.0),
        sleep=sleeps if sleeps is not None else Sleeps(), shared=shared,
    )  # fmt: skip


@asynccontextmanager
async def running(alerts: Alerts) -> AsyncIterator[Alerts]:
    alerts.start()
    try:
        yield alerts
    finally:
        await alerts.stop(grace_s=5)


def record(**fields: object) -> RequestRecord:
    values: dict[str, object] = dict.fromkeys(RequestRecord.__slots__)
    values.update(
        request_id="req-1", timestamp=datetime.now(UTC), endpoint="openai", user_id="alice@corp",
        tenant="acme", team="payments", stream=False, attempts=(), status=200, error_code=None,
        latency_ms=12.0, tokens_in=0, tokens_out=0, tokens_estimated=False, cost_usd=0.0,
        policy_reasons=(), dlp_findings=(), model_requested="gpt-emu",
    )  # fmt: skip
    values.update(fields)
    return RequestRecord(**values)  # type: ignore[arg-type]


def blocked(request_id: str = "req-1", **fields: object) -> RequestRecord:
    findings = (
        {"entity": "api_key", "direction": "request", "count": 1, "action": "block"},
        {"entity": "email", "direction": "request", "count": 2, "action": "redact"},
    )
    return record(request_id=request_id, status=400, error_code="dlp_blocked",
                  dlp_action="block", dlp_findings=findings, **fields)  # fmt: skip


# --- the payloads, at the receiver ----------------------------------------------------


async def test_a_dlp_block_reaches_a_slack_webhook_as_a_slack_message(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    async with running(service(transport, slack(receiver))) as alerts:
        await AlertRecorder(alerts).record(blocked())
        [got] = await receiver.arrivals(1)

    assert got.path == f"/hooks/{receiver.token}"
    assert got.headers["Content-Type"] == "application/json"
    message = got.body
    assert set(message) == {"text", "blocks"}
    assert "api_key" in message["text"]
    header, section, context = message["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert "DLP blocked a request carrying api_key" in header["text"]["text"]
    fields = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
              for f in section["fields"]}  # fmt: skip
    assert section["type"] == "section"
    assert fields["request_id"] == "req-1"
    assert fields["entities"] == "api_key"  # what was blocked; the redacted email is not
    assert (fields["tenant"], fields["team"], fields["model"]) == ("acme", "payments", "gpt-emu")
    assert context["type"] == "context"
    assert "`dlp_block`" in context["elements"][0]["text"]
    assert "alice@corp" not in got.raw  # no user id: only ids, teams, models, entity types


async def test_an_opened_circuit_reaches_pagerduty_as_an_events_v2_trigger(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    alerts = service(transport, pagerduty(receiver))
    clock = FakeClock()
    rules = BreakerRules(window_size=4, minimum_calls=4, wait_duration_s=30)
    breaker = Breaker(MemoryStore(clock=clock), rules, view_ttl_s=0, clock=clock,
                      on_transition=breaker_listener(alerts))  # fmt: skip
    async with running(alerts):
        for _ in range(4):
            await breaker.record("gpt-emu", ok=False)
        [got] = await receiver.arrivals(1)

    event = got.body
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "llm-gateway/breaker_open/gpt-emu"
    payload = event["payload"]
    assert set(payload) == {
        "summary", "source", "severity", "timestamp", "component", "group", "class",
        "custom_details",
    }  # fmt: skip
    assert "gpt-emu" in payload["summary"]
    assert len(payload["summary"]) <= 1024
    assert (payload["source"], payload["severity"]) == ("gw-1", "error")
    assert (payload["component"], payload["group"], payload["class"]) == (
        "routing", "llm-gateway", "breaker_open",
    )  # fmt: skip
    assert payload["custom_details"] == {"model": "gpt-emu", "from": "closed"}
    assert payload["timestamp"].startswith("2027-01-15T08:00:00")


async def test_a_circuit_that_closes_or_half_opens_raises_nothing(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    alerts = service(transport, pagerduty(receiver), dedup_s=0)
    listen = breaker_listener(alerts)
    clock = FakeClock()
    breaker = Breaker(MemoryStore(clock=clock), BreakerRules(window_size=2, minimum_calls=2,
                      wait_duration_s=5, permitted_calls_in_half_open=1), view_ttl_s=0,
                      clock=clock, on_transition=listen)  # fmt: skip
    await breaker.record("m", ok=False)
    await breaker.record("m", ok=False)  # closed -> open
    clock.now += 10
    assert await breaker.admit("m")  # open -> half_open
    await breaker.record("m", ok=True)  # half_open -> closed
    assert alerts.stats()["oncall"].queued == 1


async def test_policy_errors_and_budget_refusals_are_alerts_of_their_own_kinds(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    destination = slack(receiver, "policy_error", "budget_exceeded", "dlp_alert")
    async with running(service(transport, destination)) as alerts:
        recorder = AlertRecorder(alerts)
        await recorder.record(record(status=403, error_code="policy_error",
                                     policy_decision="error", policy_revision="rev-7"))  # fmt: skip
        await recorder.record(record(status=429, error_code="cost_budget_exceeded"))
        await recorder.record(record(status=200))  # nothing to say
        await recorder.record(blocked())  # not a kind this destination takes
        flagged = (
            {"entity": "internal_ip", "direction": "request", "count": 1, "action": "alert"},
        )
        await recorder.record(record(dlp_action="alert", dlp_findings=flagged))
        got = await receiver.arrivals(3)
    kinds = [m.body["blocks"][-1]["elements"][0]["text"].split("`")[1] for m in got]
    assert kinds == ["policy_error", "budget_exceeded", "dlp_alert"]
    assert "cost budget" in got[1].body["text"]
    assert len(receiver.received) == 3


# --- de-duplication and rate limits ---------------------------------------------------


async def test_repeats_within_the_window_are_one_alert_and_the_next_one_counts_them(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    clock = Clock()
    alerts = service(transport, slack(receiver), clock=clock, dedup_s=300)
    recorder = AlertRecorder(alerts)
    async with running(alerts):
        for n in range(3):  # one team, one entity type: one alert
            await recorder.record(blocked(f"req-{n}"))
        await recorder.record(blocked("req-other", team="search"))  # another team: its own
        await receiver.arrivals(2)
        clock.now += 301
        await recorder.record(blocked("req-later"))
        got = await receiver.arrivals(3)
    assert alerts.deduplicated == 2
    assert ["req-0" in m.raw for m in got] == [True, False, False]
    assert "req-other" in got[1].raw
    assert "req-later" in got[2].raw
    assert "*repeats*\\n2" in got[2].raw


async def test_each_destination_is_rate_limited_on_its_own(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    clock = Clock()
    limited = slack(receiver, "breaker_open", max_per_minute=2)
    alerts = service(transport, limited, pagerduty(receiver), clock=clock)
    for model in ("a", "b", "c"):
        alerts.alert("breaker_open", model, f"circuit {model} opened")
    assert alerts.stats()["team-slack"].rate_limited == 1
    assert alerts.stats()["oncall"].rate_limited == 0
    clock.now += 30  # half a minute: one more token
    alerts.alert("breaker_open", "d", "circuit d opened")
    alerts.alert("breaker_open", "e", "circuit e opened")
    async with running(alerts):
        await receiver.arrivals(8)
    texts = sorted(
        m.body["text"].rpartition("] ")[2] for m in receiver.received if "text" in m.body
    )
    assert texts == [f"circuit {m} opened" for m in "abd"]
    assert alerts.stats()["team-slack"].rate_limited == 2
    assert alerts.stats()["oncall"].sent == 5


async def test_replicas_sharing_a_store_send_what_they_all_see_once_per_window(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    store = MemoryStore(clock=FakeClock())
    wall = Clock(1_800_000_000.0)
    replicas = [
        service(transport, slack(receiver, "policy_error"), shared=store, wall=wall, clock=Clock())
        for _ in range(2)
    ]
    for replica in replicas:
        replica.start()
    try:
        for replica in replicas:  # the policy engine is down: both replicas see it
            replica.alert("policy_error", "engine", "The policy engine could not decide")
        await receiver.arrivals(1)
        wall.now += 300  # the next window: one more
        for replica in replicas:
            replica._seen.clear()  # as if each replica's own window had passed too
            replica.alert("policy_error", "engine", "The policy engine could not decide")
        await receiver.arrivals(2)
    finally:
        for replica in replicas:
            await replica.stop(grace_s=5)
    assert len(receiver.received) == 2
    assert sum(r.stats()["team-slack"].claimed_elsewhere for r in replicas) == 2


class BrokenStore(MemoryStore):
    async def set_if_absent(self, key: str, value: bytes, *, ttl_s: float) -> bool:
        raise StoreUnavailable("redis is down")


async def test_a_store_that_fails_does_not_stop_the_alert(
    receiver: Receiver, transport: AiohttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = service(transport, slack(receiver, "policy_error"), shared=BrokenStore())
    with caplog.at_level(logging.WARNING):
        async with running(alerts):
            alerts.alert("policy_error", "engine", "The policy engine could not decide")
            await receiver.arrivals(1)
    assert alerts.stats()["team-slack"].sent == 1
    assert "alerts go out unclaimed" in caplog.text


# --- retries ----------------------------------------------------------------------------


async def test_a_500_with_retry_after_is_tried_again_after_that_long_then_delivered(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    receiver.answer(500, Retry_After="7")
    sleeps = Sleeps()
    alerts = service(transport, pagerduty(receiver), sleeps=sleeps)
    async with running(alerts):
        alerts.alert("breaker_open", "gpt-emu", "circuit opened")
        first, second = await receiver.arrivals(2)
    assert first.body == second.body
    assert sleeps == [7.0]
    stats = alerts.stats()["oncall"]
    assert (stats.sent, stats.retried, stats.failed) == (1, 1, 0)


async def test_429_and_5xx_back_off_and_give_up_after_max_attempts(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    for status in (429, 503, 502):
        receiver.answer(status)
    sleeps = Sleeps()
    alerts = service(transport, pagerduty(receiver, max_attempts=3), sleeps=sleeps)
    async with running(alerts):
        alerts.alert("breaker_open", "gpt-emu", "circuit opened")
        await receiver.arrivals(3)
    assert sleeps == [1.0, 2.0]
    stats = alerts.stats()["oncall"]
    assert (stats.sent, stats.retried, stats.failed) == (0, 2, 1)
    assert len(receiver.received) == 3


async def test_a_client_error_is_not_tried_again(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    receiver.answer(400)
    alerts = service(transport, pagerduty(receiver))
    async with running(alerts):
        alerts.alert("breaker_open", "gpt-emu", "circuit opened")
        alerts.alert("breaker_open", "claude-emu", "circuit opened")
        await receiver.arrivals(2)
    stats = alerts.stats()["oncall"]
    assert (stats.sent, stats.retried, stats.failed) == (1, 0, 1)


async def test_an_unreachable_webhook_is_retried_and_no_log_line_shows_its_secrets(
    receiver: Receiver, transport: AiohttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    url = receiver.url
    receiver.stop()  # nothing listens there any more
    sleeps = Sleeps()
    dead = replace(pagerduty(receiver), url=url)
    alerts = service(transport, dead, sleeps=sleeps)
    with caplog.at_level(logging.DEBUG):
        async with running(alerts):
            alerts.alert("breaker_open", "gpt-emu", "circuit opened")
    assert sleeps == [1.0, 2.0]
    assert alerts.stats()["oncall"].failed == 1
    logged = caplog.text
    assert "alerts to oncall" in logged
    assert "after 3 attempts" in logged
    assert receiver.token not in logged
    assert ROUTING_KEY not in logged
    assert receiver.token not in repr(dead)
    assert ROUTING_KEY not in repr(dead)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("600", 60.0), ("soon", 0.0), (None, 0.0),
     ("Fri, 15 Jan 2027 08:00:30 GMT", 30.0)],
)  # fmt: skip
def test_retry_after_in_seconds_or_as_a_date_and_at_most_a_minute(
    header: str | None, seconds: float
) -> None:
    assert retry_after(header, 1_800_000_000.0) == pytest.approx(seconds)


# --- never in the way -------------------------------------------------------------------


async def test_a_hanging_webhook_delays_neither_the_request_nor_the_other_destination(
    transport: AiohttpTransport,
) -> None:
    hanging, other = Receiver().start(), Receiver().start()
    hanging.hold()
    events: list[str] = []
    try:
        alerts = service(transport, slack(hanging), replace(pagerduty(other), events=frozenset(
            {"dlp_block"})))  # fmt: skip
        async with running(alerts):
            recorder = AlertRecorder(alerts)
            await recorder.record(blocked("req-1"))
            events.append("request recorded")
            await hanging.arrivals(1)  # the Slack sender is stuck on its first call...
            await other.arrivals(1)  # ...and PagerDuty's got its alert all the same
            await recorder.record(blocked("req-2", team="search"))
            events.append("second request recorded")
            assert hanging.answered == 0
            events.append("webhook still hanging")
            hanging.release()
    finally:
        hanging.stop()
        other.stop()
    assert events == ["request recorded", "second request recorded", "webhook still hanging"]
    assert alerts.stats()["team-slack"].sent == 2


async def test_a_full_queue_drops_its_oldest_alert_and_counts_it(
    receiver: Receiver, transport: AiohttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = service(transport, pagerduty(receiver), queue_size=2)
    with caplog.at_level(logging.WARNING):
        for model in ("a", "b", "c"):  # not started yet: nothing is sent meanwhile
            assert alerts.alert("breaker_open", model, f"circuit {model} opened")
    assert alerts.stats()["oncall"].dropped == 1
    assert "queue is full" in caplog.text
    async with running(alerts):
        got = await receiver.arrivals(2)
    assert [m.body["payload"]["custom_details"] for m in got] == [{}, {}]
    assert [m.body["dedup_key"][-1] for m in got] == ["b", "c"]


async def test_no_destination_for_a_kind_means_nothing_is_queued(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    alerts = service(transport, slack(receiver, "dlp_block"))
    assert not alerts.alert("breaker_open", "m", "circuit opened")
    assert not alerts.wants("breaker_open")
    assert alerts.wants("dlp_block")
    assert alerts.stats()["team-slack"].queued == 0


# --- the periodic checks -----------------------------------------------------------------


async def test_a_watched_gauge_alerts_when_it_reaches_its_threshold(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    readings = iter([(5.0, 10.0), (12.0, 10.0)])
    alerts = service(transport, pagerduty(receiver, "audit_spool"))
    alerts.watch("audit_spool", "spool", lambda: next(readings), "The audit spool is growing")
    await alerts.run_checks()
    assert alerts.stats()["oncall"].queued == 0
    await alerts.run_checks()
    async with running(alerts):
        [got] = await receiver.arrivals(1)
    payload = got.body["payload"]
    assert (payload["class"], payload["component"]) == ("audit_spool", "audit")
    assert payload["custom_details"] == {"value": 12.0, "threshold": 10.0}


async def test_a_gauge_watched_after_start_is_read_every_check_seconds(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    alerts = service(transport, pagerduty(receiver, "audit_spool"), check_s=0.01)
    reads: list[int] = []

    def read() -> tuple[float, float]:
        reads.append(1)
        return (float(len(reads)), 3.0)

    async with running(alerts):
        alerts.watch("audit_spool", "spool", read, "The audit spool is growing")
        [got] = await receiver.arrivals(1)
    assert len(reads) >= 3
    assert got.body["payload"]["custom_details"]["value"] == 3.0


async def test_a_failing_check_is_logged_and_the_others_still_run(
    receiver: Receiver, transport: AiohttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = service(transport, pagerduty(receiver, "audit_spool"))

    def broken() -> tuple[float, float]:
        raise OSError("spool unreadable")

    alerts.watch("audit_spool", "broken", broken, "never")
    alerts.watch("audit_spool", "spool", lambda: (3.0, 1.0), "The audit spool is growing")
    with caplog.at_level(logging.WARNING):
        await alerts.run_checks()
    assert "a periodic check failed" in caplog.text
    assert alerts.stats()["oncall"].queued == 1


async def test_a_confirmation_pending_too_long_is_alerted_once(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    clock = FakeClock()
    clock.now = NOW
    confirmations = Confirmations(MemoryStore(clock=clock), clock)
    old = pending_confirmation(created_at=NOW, expires_at=NOW + 3600)
    young = pending_confirmation(created_at=NOW + 500, expires_at=NOW + 3600, tenant="globex")
    await confirmations.open(old)
    await confirmations.open(young)
    alerts = service(transport, slack(receiver, "confirmation_stale"))
    check = StaleConfirmations(alerts, confirmations, 600, clock)
    clock.now = NOW + 599
    await check()
    assert alerts.stats()["team-slack"].queued == 0
    clock.now = NOW + 700
    await check()
    await check()  # still pending: not alerted again
    async with running(alerts):
        [got] = await receiver.arrivals(1)
    assert old.id in got.raw
    assert young.id not in got.raw
    assert "waited 12 min" in got.body["text"]
    assert old.phrase not in got.raw
    assert old.user_id not in got.raw


async def test_a_decided_confirmation_is_not_pending(transport: AiohttpTransport) -> None:
    clock = FakeClock()
    clock.now = NOW
    confirmations = Confirmations(MemoryStore(clock=clock), clock)
    kept, cancelled = pending_confirmation(), pending_confirmation()
    await confirmations.open(kept)
    await confirmations.open(cancelled)
    await confirmations.decide(cancelled, "cancelled")
    assert [c.id for c in await confirmations.pending()] == [kept.id]


async def test_build_alerts_checks_confirmations_only_for_a_destination_that_wants_them(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    clock = FakeClock()
    confirmations = Confirmations(MemoryStore(clock=clock), clock)
    assert build_alerts(AlertSettings(), transport, confirmations) is None
    plain = build_alerts(AlertSettings((slack(receiver),)), transport, confirmations)
    watched = build_alerts(
        AlertSettings((slack(receiver, "confirmation_stale"),)), transport, confirmations
    )
    assert plain is not None
    assert watched is not None
    assert (len(plain._checks), len(watched._checks)) == (0, 1)


def test_slack_markup_in_a_value_is_escaped_and_a_long_key_still_fits_pagerduty() -> None:
    """Slack reads <, > and & as markup in mrkdwn: a team called <!channel> pings nobody (the
    header is plain_text, which Slack does not parse)."""
    alert = Alert("dlp_block", "k" * 300, "DLP blocked <!channel>", {"team": "<!channel>"},
                  1_800_000_000.0, "warning")  # fmt: skip
    message = slack_message(alert, "gw")
    mrkdwn = json.dumps([message["text"], message["blocks"][1:]])
    assert "<!channel>" not in mrkdwn
    assert mrkdwn.count("&lt;!channel&gt;") == 2
    assert message["blocks"][0]["text"] == {"type": "plain_text", "text": "DLP blocked <!channel>"}
    assert len(dedup_key(alert)) <= 255
