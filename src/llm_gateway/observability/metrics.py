"""Prometheus metrics: counters and histograms fed from each settled request, and gauges
read when ``GET /metrics`` is scraped.

:class:`MetricsRecorder` is one more recorder (next to the access log and the
audit trail): it reads each :class:`~llm_gateway.records.RequestRecord` and
counts it. Labels are bounded by the configuration, never by what a caller
sends: the front door or action (``endpoint``), the model that answered (the
configured deployment's name, never the name asked for), the status and error
code, DLP's entity types and actions, the confirmation's event. No user id is a
label; the tenant is one only on the token and cost counters, and only with
``METRICS_TENANT_LABEL``.

One process: the metrics live in a registry of the app's own (two gateways in
one process, as in the tests, count apart). Several (``WORKERS`` > 1):
prometheus-client's multiprocess mode, chosen when ``PROMETHEUS_MULTIPROC_DIR``
is set before it is imported (``serve`` sees to it: :mod:`.multiprocess`). Each
worker writes its counters to files in that directory and a scrape, answered by
any worker, adds up every worker's, those of workers that have exited included.

The gauges read at scrape time come from the worker that answers: the circuit
breakers from the state store (one view for every worker and replica when it is
Redis), the health checks and the audit writer's backlog from that worker's
own (each worker checks its models and writes its rows itself).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from llm_gateway.records import RequestRecord

__all__ = [
    "CONTENT_TYPE",
    "PREFIX",
    "EndpointGauge",
    "Metrics",
    "MetricsRecorder",
    "Snapshot",
    "multiprocess_dir",
]

PREFIX = "llm_gateway"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Seconds. A request spans the whole pipeline, an upstream call one provider's answer
# (minutes for a long stream), a queue wait the rate limit's queue (max_wait_ms).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RATE_LIMIT_CODES = frozenset({"rate_limited", "token_budget_exceeded", "cost_budget_exceeded"})
_GROUNDED = re.compile(r"\bgrounded=(true|false)\b")

M = TypeVar("M", Counter, Histogram)


class _Family(Generic[M]):
    """A labelled metric and its children by label values: ``labels()`` validates and locks
    at every call; a dict lookup costs a tenth of it."""

    __slots__ = ("children", "metric")
    metric: M
    children: dict[tuple[str, ...], M]

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = self.metric.labels(*labels)
        return child


def multiprocess_dir() -> str | None:
    """The directory the workers' metrics are shared through; None in one process.

    prometheus-client chooses its mode once, when it is imported: a variable set
    later is not multiprocess mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and getattr(values.ValueClass, "_multiprocess", False):
        return path
    return None


class Metrics:
    """The gateway's metrics, in a registry of their own (see the module's doc)."""

    def __init__(self, *, tenant_label: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.tenant_label = tenant_label
        r = self.registry
        by_model = ("model", "tenant") if tenant_label else ("model",)
        self.requests = _Family(Counter(
            f"{PREFIX}_requests", "Settled requests, by front door or action, model, status "
            "and error code", ("endpoint", "model", "status", "error_code"), registry=r,
        ))  # fmt: skip
        self.request_seconds = _Family(Histogram(
            f"{PREFIX}_request_duration_seconds", "Time from a request's arrival to its "
            "settling (a stream's last event)", ("endpoint", "model"),
            buckets=REQUEST_BUCKETS, registry=r,
        ))  # fmt: skip
        self.first_token_seconds = _Family(Histogram(
            f"{PREFIX}_time_to_first_token_seconds", "A stream's time from its request's "
            "arrival to its first text or tool-call delta", ("endpoint", "model"),
            buckets=REQUEST_BUCKETS, registry=r,
        ))  # fmt: skip
        self.stage_seconds = _Family(Histogram(
            f"{PREFIX}_stage_duration_seconds", "A pipeline stage's own time on a request's "
            "way in: from its start to the next stage's (a stage that answers or refuses is "
            "not observed; the provider call is the upstream histogram)", ("stage",),
            buckets=STAGE_BUCKETS, registry=r,
        ))  # fmt: skip
        self.upstream_seconds = _Family(Histogram(
            f"{PREFIX}_upstream_duration_seconds", "One call to a model's deployment, each "
            "attempt of a failover", ("model",), buckets=REQUEST_BUCKETS, registry=r,
        ))  # fmt: skip
        self.upstream_attempts = _Family(Counter(
            f"{PREFIX}_upstream_attempts", "Calls to a model's deployment, by its status and "
            "error code", ("model", "status", "error_code"), registry=r,
        ))  # fmt: skip
        self.tokens = _Family(Counter(
            f"{PREFIX}_tokens", "Tokens accounted (the provider's count, else the estimate), "
            "in (prompt) and out (answer)", (*by_model, "direction"), registry=r,
        ))  # fmt: skip
        self.cost = _Family(Counter(
            f"{PREFIX}_cost_usd", "Cost in US dollars, from config/pricing.yaml", by_model,
            registry=r,
        ))  # fmt: skip
        self.dlp_findings = _Family(Counter(
            f"{PREFIX}_dlp_findings", "Values DLP found, by entity type, direction (request "
            "or response) and the action taken", ("entity", "direction", "action"), registry=r,
        ))  # fmt: skip
        self.policy_denials = _Family(Counter(
            f"{PREFIX}_policy_denials", "Requests the policy refused (deny) or could not "
            "decide (error)", ("endpoint", "decision"), registry=r,
        ))  # fmt: skip
        self.rate_limited = _Family(Counter(
            f"{PREFIX}_rate_limit_rejections", "Requests refused by a rate limit or a token "
            "or cost budget", ("endpoint", "error_code"), registry=r,
        ))  # fmt: skip
        self.queue_seconds = _Family(Histogram(
            f"{PREFIX}_rate_limit_queue_wait_seconds", "How long a rate limit's queue held a "
            "request (admitted or not)", ("endpoint",), buckets=QUEUE_BUCKETS, registry=r,
        ))  # fmt: skip
        self.confirmations = _Family(Counter(
            f"{PREFIX}_confirmations", "Confirmation events: challenged, confirmed, cancelled, "
            "expired, refused, pending, details, api-approved, api-cancelled",
            ("event",), registry=r,
        ))  # fmt: skip
        self.grounding = _Family(Counter(
            f"{PREFIX}_grounding_verdicts", "Answers checked against their tool results, by "
            "verdict", ("grounded",), registry=r,
        ))  # fmt: skip

    def count(self, record: RequestRecord) -> None:
        """Count one settled request."""
        model = record.model or ""
        self.requests(record.endpoint, model, str(record.status), record.error_code or "").inc()
        self.request_seconds(record.endpoint, model).observe(record.latency_ms / 1000)
        for stage, seconds in record.stages:
            self.stage_seconds(stage).observe(seconds)
        if record.first_token_ms is not None:
            self.first_token_seconds(record.endpoint, model).observe(record.first_token_ms / 1000)
        for attempt in record.attempts:
            status = str(attempt.status) if attempt.status is not None else ""
            self.upstream_attempts(attempt.model, status, attempt.error_code or "").inc()
            if attempt.latency_ms is not None:
                self.upstream_seconds(attempt.model).observe(attempt.latency_ms / 1000)
        if record.tokens_in or record.tokens_out or record.cost_usd:
            self._usage(record, model)
        for finding in record.dlp_findings:
            self.dlp_findings(
                str(finding.get("entity", "")), str(finding.get("direction", "")),
                str(finding.get("action", "")),
            ).inc(int(finding.get("count", 1)))  # fmt: skip
        self._events(record)

    def _usage(self, record: RequestRecord, model: str) -> None:
        by = (model, record.tenant or "") if self.tenant_label else (model,)
        if record.tokens_in:
            self.tokens(*by, "in").inc(record.tokens_in)
        if record.tokens_out:
            self.tokens(*by, "out").inc(record.tokens_out)
        if record.cost_usd:
            self.cost(*by).inc(record.cost_usd)

    def _events(self, record: RequestRecord) -> None:
        """Refusals, queue waits, confirmations and grounding verdicts."""
        if record.policy_decision in ("deny", "error"):
            self.policy_denials(record.endpoint, record.policy_decision).inc()
        if record.error_code in RATE_LIMIT_CODES:
            self.rate_limited(record.endpoint, record.error_code).inc()
        if record.queued_ms is not None:
            self.queue_seconds(record.endpoint).observe(record.queued_ms / 1000)
        if record.confirmation is not None:
            self.confirmations(record.confirmation.rpartition(":")[2]).inc()
        if record.grounding is not None and (found := _GROUNDED.search(record.grounding)):
            self.grounding(found.group(1)).inc()

    def exposition(self, gauges: Iterable[Metric] = ()) -> bytes:
        """Everything, in Prometheus' text format: the counters (every worker's, in
        multiprocess mode) and ``gauges``, read just now."""
        shared = multiprocess_dir()
        counted: Collector = _Multiprocess(shared) if shared is not None else self.registry
        return generate_latest(_Joined([counted, _Fixed(list(gauges))]))


class MetricsRecorder:
    """The metrics as a recorder: counts each settled request, at once."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def record(self, record: RequestRecord) -> None:
        self.metrics.count(record)


# --- the gauges read at scrape time ------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointGauge:
    """One model endpoint as a scrape sees it."""

    model: str
    region: str  # "" for the model's own endpoint
    up: bool  # enabled, and not marked down by its health checks
    circuit: str | None  # closed, open, half_open; None: no breaker, or the store is silent


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the gauges show, gathered (asynchronously) before the text is rendered."""

    endpoints: Sequence[EndpointGauge]
    audit_backlog: int
    audit_spool_bytes: int = 0
    audit_spool_limit_bytes: int = 0  # 0: no spool
    confirmations_pending: int | None = None  # None: the store did not answer
    circuit_states: Sequence[str] = ("closed", "open", "half_open")

    def families(self) -> list[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_model_up", "1 when the model endpoint is enabled and its health "
            "checks (if any) have not marked it down, as the answering worker sees it",
            labels=("model", "region"),
        )  # fmt: skip
        circuit = GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_state", "1 for the state the model endpoint's circuit "
            "is in (closed, open, half_open), 0 for the others",
            labels=("model", "region", "state"),
        )  # fmt: skip
        for e in self.endpoints:
            up.add_metric((e.model, e.region), 1.0 if e.up else 0.0)
            if e.circuit is not None:
                for state in self.circuit_states:
                    circuit.add_metric((e.model, e.region, state), float(state == e.circuit))
        backlog = GaugeMetricFamily(
            f"{PREFIX}_audit_backlog_rows", "Audit rows queued and not yet committed, in the "
            "answering worker", value=float(self.audit_backlog),
        )  # fmt: skip
        spool = GaugeMetricFamily(
            f"{PREFIX}_audit_spool_bytes", "Bytes of audit rows in the local spool, waiting for "
            "the database (the answering worker's spool directory and any it adopted)",
            value=float(self.audit_spool_bytes),
        )  # fmt: skip
        limit = GaugeMetricFamily(
            f"{PREFIX}_audit_spool_limit_bytes", "The spool's limit (AUDIT_SPOOL_MAX_MB); at it "
            "requests are refused with audit_unavailable; 0 when there is no spool",
            value=float(self.audit_spool_limit_bytes),
        )  # fmt: skip
        families: list[Metric] = [up, circuit, backlog, spool, limit]
        if self.confirmations_pending is not None:
            families.append(GaugeMetricFamily(
                f"{PREFIX}_confirmations_pending", "Confirmations waiting for their answer, "
                "every tenant's (from the state store)", value=float(self.confirmations_pending),
            ))  # fmt: skip
        return families


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class _Joined:
    def __init__(self, parts: Sequence[Collector]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


class _Multiprocess:
    """Every worker's files in ``path``, added up (read afresh at each scrape)."""

    def __init__(self, path: str) -> None:
        self.collector: Any = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        found: Iterable[Metric] = self.collector.collect()
        return found
