"""The metrics recorder: what each record counts, with which labels; the scrape-time gauges;
the exposition; several processes adding up through one multiprocess directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_gateway.observability import multiprocess
from llm_gateway.observability.metrics import (
    EndpointGauge,
    Metrics,
    MetricsRecorder,
    Snapshot,
    multiprocess_dir,
)
from llm_gateway.records import AttemptRecord, RequestRecord

REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def record(**fields: object) -> RequestRecord:
    values: dict[str, object] = dict.fromkeys(RequestRecord.__slots__)
    values.update(
        request_id="r1", timestamp=datetime.now(UTC), endpoint="openai", user_id="alice-u-42",
        tenant="acme", stream=False, attempts=(), status=200, error_code=None, latency_ms=120.0,
        tokens_in=0, tokens_out=0, tokens_estimated=False, cost_usd=0.0, policy_reasons=(),
        dlp_findings=(), model="gpt-emu", stages=(),
    )  # fmt: skip
    values.update(fields)
    return RequestRecord(**values)  # type: ignore[arg-type]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def recorded(metrics: Metrics, *records: RequestRecord) -> Samples:
    recorder = MetricsRecorder(metrics)
    for r in records:
        await recorder.record(r)
    return samples(metrics.exposition().decode())


async def test_an_answer_counts_its_request_latency_attempts_tokens_and_cost() -> None:
    attempts = (
        AttemptRecord("claude-emu", "anthropic", "claude", 503, "upstream_error", 40.0),
        AttemptRecord("gpt-emu", "openai", "gpt-4o-mini", 200, None, 80.0),
    )
    answer = record(attempts=attempts, tokens_in=100, tokens_out=20, cost_usd=0.25)
    found = await recorded(Metrics(), answer, answer)
    requests = {"endpoint": "openai", "model": "gpt-emu", "status": "200", "error_code": ""}
    assert value(found, "llm_gateway_requests_total", **requests) == 2
    latency = {"endpoint": "openai", "model": "gpt-emu"}
    assert value(found, "llm_gateway_request_duration_seconds_count", **latency) == 2
    assert value(found, "llm_gateway_request_duration_seconds_sum", **latency) == pytest.approx(
        0.24
    )
    assert value(found, "llm_gateway_request_duration_seconds_bucket", le="0.1", **latency) == 0
    assert value(found, "llm_gateway_request_duration_seconds_bucket", le="0.25", **latency) == 2
    for model, seconds in (("claude-emu", 0.04), ("gpt-emu", 0.08)):
        assert value(found, "llm_gateway_upstream_duration_seconds_count", model=model) == 2
        total = value(found, "llm_gateway_upstream_duration_seconds_sum", model=model)
        assert total == pytest.approx(2 * seconds)
    failed = {"model": "claude-emu", "status": "503", "error_code": "upstream_error"}
    assert value(found, "llm_gateway_upstream_attempts_total", **failed) == 2
    assert value(found, "llm_gateway_tokens_total", model="gpt-emu", direction="in") == 200
    assert value(found, "llm_gateway_tokens_total", model="gpt-emu", direction="out") == 40
    assert value(found, "llm_gateway_cost_usd_total", model="gpt-emu") == pytest.approx(0.5)


async def test_refusals_count_their_cause() -> None:
    denied = record(status=403, error_code="policy_denied", policy_decision="deny", model=None)
    undecided = record(status=403, error_code="policy_error", policy_decision="error", model=None)
    limited = record(status=429, error_code="token_budget_exceeded", queued_ms=250.0)
    admitted = record(queued_ms=5.0, policy_decision="allow")
    found = await recorded(Metrics(), denied, undecided, limited, admitted)
    for decision in ("deny", "error"):
        assert value(
            found, "llm_gateway_policy_denials_total", endpoint="openai", decision=decision
        ) == 1  # fmt: skip
    assert (
        value(found, "llm_gateway_policy_denials_total", endpoint="openai", decision="allow")
        is None
    )
    assert value(
        found, "llm_gateway_requests_total",
        endpoint="openai", model="", status="403", error_code="policy_denied",
    ) == 1  # fmt: skip
    rejected = {"endpoint": "openai", "error_code": "token_budget_exceeded"}
    assert value(found, "llm_gateway_rate_limit_rejections_total", **rejected) == 1
    queue = "llm_gateway_rate_limit_queue_wait_seconds"
    assert value(found, f"{queue}_count", endpoint="openai") == 2
    assert value(found, f"{queue}_sum", endpoint="openai") == pytest.approx(0.255)
    assert value(found, f"{queue}_bucket", endpoint="openai", le="0.01") == 1


async def test_dlp_findings_confirmations_and_grounding_verdicts() -> None:
    findings = (
        {"entity": "EMAIL_ADDRESS", "direction": "request", "count": 2, "action": "redact"},
        {"entity": "AWS_ACCESS_KEY", "direction": "response", "count": 1, "action": "block"},
    )
    found = await recorded(
        Metrics(),
        record(dlp_findings=findings, dlp_action="block"),
        record(confirmation="c0ffee:challenged"),
        record(confirmation="c0ffee:confirmed+mfa"),
        record(endpoint="confirmation.expire", confirmation="beef:expired"),
        record(grounding="grounded=false score=0.50 claims=2 failed=contradiction retried"),
        record(grounding="grounded=true score=1.00 claims=1"),
    )
    email = {"entity": "EMAIL_ADDRESS", "direction": "request", "action": "redact"}
    assert value(found, "llm_gateway_dlp_findings_total", **email) == 2
    key = {"entity": "AWS_ACCESS_KEY", "direction": "response", "action": "block"}
    assert value(found, "llm_gateway_dlp_findings_total", **key) == 1
    for event in ("challenged", "confirmed+mfa", "expired"):
        assert value(found, "llm_gateway_confirmations_total", event=event) == 1
    for verdict in ("true", "false"):
        assert value(found, "llm_gateway_grounding_verdicts_total", grounded=verdict) == 1
    # the confirmation's id is no label
    assert not any("c0ffee" in v for _, labels in found for _, v in labels)


async def test_no_user_is_a_label_and_the_tenant_only_when_asked() -> None:
    spent = record(tokens_in=10, tokens_out=5, cost_usd=0.1, tenant="acme")
    plain = await recorded(Metrics(), spent)
    text = Metrics().exposition().decode()
    assert "alice-u-42" not in text
    assert value(plain, "llm_gateway_tokens_total", model="gpt-emu", direction="in") == 10
    assert not any("acme" in v for _, labels in plain for _, v in labels)
    tenanted = await recorded(Metrics(tenant_label=True), spent, record(tokens_in=3))
    labels = {"model": "gpt-emu", "tenant": "acme"}
    assert value(tenanted, "llm_gateway_tokens_total", direction="in", **labels) == 13
    assert value(tenanted, "llm_gateway_cost_usd_total", **labels) == pytest.approx(0.1)
    for found in (plain, tenanted):
        assert not any("alice-u-42" in v for _, labels in found for _, v in labels)


async def test_two_gateways_in_one_process_count_apart() -> None:
    a, b = Metrics(), Metrics()
    await MetricsRecorder(a).record(record())
    found = samples(b.exposition().decode())
    requests = {"endpoint": "openai", "model": "gpt-emu", "status": "200", "error_code": ""}
    assert value(found, "llm_gateway_requests_total", **requests) is None


def test_the_gauges_read_at_scrape_time() -> None:
    snapshot = Snapshot(
        endpoints=[
            EndpointGauge("gpt-emu", "", up=True, circuit="open"),
            EndpointGauge("gpt-emu", "eu", up=False, circuit="closed"),
            EndpointGauge("ollama-emu", "", up=True, circuit=None),
        ],
        audit_backlog=7,
    )
    found = samples(Metrics().exposition(snapshot.families()).decode())
    assert value(found, "llm_gateway_model_up", model="gpt-emu", region="") == 1
    assert value(found, "llm_gateway_model_up", model="gpt-emu", region="eu") == 0
    state = "llm_gateway_circuit_breaker_state"
    assert value(found, state, model="gpt-emu", region="", state="open") == 1
    assert value(found, state, model="gpt-emu", region="", state="closed") == 0
    assert value(found, state, model="gpt-emu", region="eu", state="closed") == 1
    assert value(found, state, model="ollama-emu", region="", state="closed") is None
    assert value(found, "llm_gateway_audit_backlog_rows") == 7


# --- several processes -----------------------------------------------------------------

WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from llm_gateway.observability.metrics import Metrics, MetricsRecorder, multiprocess_dir
from llm_gateway.records import RequestRecord

assert multiprocess_dir() is not None, "not in multiprocess mode"
values = dict.fromkeys(RequestRecord.__slots__)
values.update(
    request_id="r", timestamp=datetime.now(UTC), endpoint="openai", stream=False, attempts=(),
    status=200, error_code=None, latency_ms=50.0, tokens_in=int(sys.argv[1]), tokens_out=1,
    tokens_estimated=False, cost_usd=0.0, policy_reasons=(), dlp_findings=(), model="gpt-emu",
    stages=(),
)
recorder = MetricsRecorder(Metrics())
for _ in range(int(sys.argv[2])):
    asyncio.run(recorder.record(RequestRecord(**values)))
"""

READER = """
import sys
from llm_gateway.observability.metrics import Metrics
sys.stdout.write(Metrics().exposition().decode())
"""


def _python(script: str, shared: Path, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_processes_sharing_a_directory_are_added_up(tmp_path: Path) -> None:
    _python(WRITER, tmp_path, "10", "3")  # one worker: 3 requests of 10 tokens in
    _python(WRITER, tmp_path, "100", "2")  # another: 2 of 100
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    found = samples(_python(READER, tmp_path))  # a third answers the scrape
    requests = {"endpoint": "openai", "model": "gpt-emu", "status": "200", "error_code": ""}
    assert value(found, "llm_gateway_requests_total", **requests) == 5
    assert value(found, "llm_gateway_tokens_total", model="gpt-emu", direction="in") == 230
    latency = {"endpoint": "openai", "model": "gpt-emu"}
    assert value(found, "llm_gateway_request_duration_seconds_count", **latency) == 5
    assert value(found, "llm_gateway_request_duration_seconds_bucket", le="0.05", **latency) == 5


def test_one_process_without_the_variable_is_not_multiprocess() -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert multiprocess_dir() is None


def test_serve_makes_a_directory_for_several_workers_only(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    assert multiprocess.prepare(1, env) is None
    assert env == {}
    made = multiprocess.prepare(4, env)
    assert made is not None
    assert made.is_dir()
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(made)


def test_a_given_directory_is_emptied_of_the_last_runs_files(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not the client's")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert multiprocess.prepare(1, env) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
