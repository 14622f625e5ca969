"""OpenTelemetry traces through the real gateway: one span per request, stage and attempt.

Most tests read the spans from the SDK's in-memory exporter, added to the
running gateway's own tracer provider (``OTEL_TRACES_EXPORTER=none`` sends
them nowhere else); one sends them to a small OTLP/HTTP receiver served here,
which decodes the protobuf as a collector would. The gateway runs in-process
(``tests/e2e/conftest.py``) in front of the provider emulator.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_modules

require_modules("opentelemetry.sdk", "opentelemetry.proto", extra="otel")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from llm_gateway.emulators import EmulatorServer  # noqa: E402
from llm_gateway.observability.tracing import start_tracing  # noqa: E402
from llm_gateway.pipeline.call import CallProvider  # noqa: E402
from llm_gateway.runtime import AppState  # noqa: E402
from llm_gateway.settings import (  # noqa: E402
    SettingsError,
    TraceExporter,
    TracingSettings,
    load_settings,
)
from tests.e2e.conftest import (  # noqa: E402
    PROVIDER_KEY,
    Gateway,
    directive,
    free_port,
    start_gateway,
    stop_gateway,
    wait_for,
)
from tests.e2e.dlp_support import EMAIL, answer_with  # noqa: E402

TRACED = {"OTEL_ENABLED": "true", "OTEL_TRACES_EXPORTER": "none"}
#: Premium callers may use every model and chain of :func:`routing`.
ACCESS = """
access:
  tiers:
    premium: {models: ["*"], features: [streaming, tools, json_output]}
  deanonymize_roles: [admin]
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def routing(emulator_url: str) -> str:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    return f"""
routing:
  models:
    gpt-emu:
      endpoint: {emulator_url}/v1
      provider: openai
      upstream_model: gpt-4o-mini
      api_key: {PROVIDER_KEY}
    claude-emu:
      endpoint: {emulator_url}/v1
      provider: anthropic
      upstream_model: claude-sonnet-4-5
      api_key: {PROVIDER_KEY}
    down:
      endpoint: {closed}
      provider: openai
      upstream_model: up-down
      api_key: {PROVIDER_KEY}
  fallback_chains:
    resilient: [down, gpt-emu]
"""


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(api_key=PROVIDER_KEY).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def state_of(gw: Gateway) -> AppState:
    assert gw.server is not None, "needs the in-process gateway"
    assert gw.server.app is not None
    state = gw.server.app.api.state.gateway
    assert isinstance(state, AppState)
    return state


@pytest.fixture(scope="module")
def traced(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, InMemorySpanExporter]]:
    tmp = tmp_path_factory.mktemp("traced")
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", TRACED,
        routing=routing(emulator.base_url), access=ACCESS,
    )  # fmt: skip
    tracing = state_of(gw).tracing
    assert tracing is not None
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield gw, exporter
    finally:
        stop_gateway(gw)


@pytest.fixture
def gw(traced: tuple[Gateway, InMemorySpanExporter]) -> Gateway:
    return traced[0]


@pytest.fixture
def spans(traced: tuple[Gateway, InMemorySpanExporter]) -> InMemorySpanExporter:
    traced[1].clear()
    return traced[1]


# --- reading a trace -----------------------------------------------------------


class Trace:
    """The spans of one request's trace, found by the request id on its request span."""

    def __init__(self, exporter: InMemorySpanExporter, request_id: str) -> None:
        def request() -> ReadableSpan | None:
            for s in exporter.get_finished_spans():
                if s.kind is SpanKind.SERVER and _attrs(s).get("llm_gateway.request_id") == (
                    request_id
                ):
                    return s
            return None

        assert wait_for(lambda: request() is not None), f"no request span for {request_id}"
        root = request()
        assert root is not None
        assert root.context is not None
        self.root = root
        self.spans = [
            s
            for s in exporter.get_finished_spans()
            if s.context is not None and s.context.trace_id == root.context.trace_id
        ]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [s for s in self.spans if s.parent and s.parent.span_id == parent.context.span_id]

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (found,) = self.named(name)
        return found

    def attempts(self) -> list[ReadableSpan]:
        return [s for s in self.spans if s.kind is SpanKind.CLIENT]

    def chain(self) -> list[str]:
        """The names from the request span down through each span's first child."""
        names, span = [], self.root
        while kids := self.children(span):
            span = kids[0]
            names.append(span.name)
        return names


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def stage_names(gw: Gateway) -> list[str]:
    """The chat pipeline's stages, as their spans are named (the call is the attempt's)."""
    stages = state_of(gw).pipeline.stages
    return [type(s).__name__ for s in stages if not isinstance(s, CallProvider)]


def everything_in(spans: Sequence[ReadableSpan]) -> str:
    """Every name, attribute, event, link and status text of ``spans``, and their resource."""
    return "\n".join(span.to_json() for span in spans)


def _chat(
    gw: Gateway, body: dict[str, Any], headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> httpx.Response:  # fmt: skip
    with gw.http() as http:
        return http.post(
            path, json=body, headers={"authorization": f"Bearer {gw.token()}", **(headers or {})}
        )


# --- one request ---------------------------------------------------------------


def test_a_chat_call_is_a_request_span_over_its_stages_and_its_attempt(
    gw: Gateway, spans: InMemorySpanExporter, emulator: EmulatorServer
) -> None:
    words = "one two three four five"
    answer = gw.openai().chat.completions.with_raw_response.create(
        model="gpt-emu", max_tokens=50, temperature=0.25, top_p=0.5,
        messages=[{"role": "user", "content": directive("hi", reply=words)}],
    )  # fmt: skip
    usage = answer.parse().usage
    assert usage is not None
    trace = Trace(spans, answer.headers["x-request-id"])

    root = trace.root
    assert root.name == "chat gpt-emu"
    assert root.parent is None  # the caller sent no traceparent
    assert trace.chain() == [*stage_names(gw), "chat gpt-4o-mini"]
    assert {"Account", "Authenticate", "ParseRequest", "Authorize", "Route"} <= set(trace.chain())
    assert all(s.kind is SpanKind.INTERNAL for s in trace.spans if s.name in stage_names(gw))
    assert _attrs(root) | {"llm_gateway.cost_usd": 0} == {
        "llm_gateway.request_id": answer.headers["x-request-id"],
        "llm_gateway.endpoint": "openai",
        "llm_gateway.model_requested": "gpt-emu",
        "llm_gateway.model": "gpt-emu",
        "llm_gateway.attempts": 1,
        "http.response.status_code": 200,
        "llm_gateway.tokens.input": usage.prompt_tokens,
        "llm_gateway.tokens.output": usage.completion_tokens,
        "llm_gateway.tokens.estimated": False,
        "llm_gateway.cost_usd": 0,
    }
    assert root.status.status_code is StatusCode.UNSET

    (attempt,) = trace.attempts()
    assert attempt.parent is not None
    assert attempt.parent.span_id == trace.one("Route").context.span_id
    assert _attrs(attempt) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.stream": False,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "server.address": "127.0.0.1",
        "server.port": emulator.port,
        "llm_gateway.model": "gpt-emu",
        "llm_gateway.attempt": 1,
    }
    assert usage.completion_tokens == len(words.split())
    assert all(s.status.status_code is StatusCode.UNSET for s in trace.spans)


def test_the_request_continues_the_callers_trace(gw: Gateway, spans: InMemorySpanExporter) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    answered = _chat(
        gw, {"model": "claude-emu", "max_tokens": 20, "messages": [
            {"role": "user", "content": "hi"}]},
        {"traceparent": traceparent, "tracestate": "vendor=1"}, path="/v1/messages",
    )  # fmt: skip
    assert answered.status_code == 200
    trace = Trace(spans, answered.headers["x-request-id"])
    root = trace.root
    assert root.context is not None
    assert root.parent is not None
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert format(root.parent.span_id, "016x") == PARENT_ID
    assert root.parent.is_remote
    assert root.context.trace_state.to_header() == "vendor=1"
    assert len(trace.spans) == len(stage_names(gw)) + 2  # every span is in the caller's trace
    assert _attrs(trace.attempts()[0])["gen_ai.provider.name"] == "anthropic"
    assert _attrs(root)["llm_gateway.endpoint"] == "anthropic"


def test_a_streams_spans_end_with_its_last_event(gw: Gateway, spans: InMemorySpanExporter) -> None:
    chunks = ["alpha ", "beta ", "gamma"]
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="gpt-emu", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": directive(
            "go", chunks=chunks, chunk_delay_ms=60, usage={"input": 7, "output": 3})}],
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "".join(chunks)
    trace = Trace(spans, raw.headers["x-request-id"])

    (attempt,) = trace.attempts()
    route, root = trace.one("Route"), trace.root
    assert route.end_time is not None
    assert attempt.end_time is not None
    assert root.end_time is not None
    assert attempt.start_time is not None
    # The stages hand the stream back at its first event; the attempt lasts until the
    # provider's last one, and the request until the caller has had it.
    assert route.end_time < attempt.end_time <= root.end_time
    assert attempt.end_time - attempt.start_time >= 2 * 60 * 1_000_000  # two of the delays
    assert _attrs(attempt)["gen_ai.request.stream"] is True
    assert _attrs(attempt)["gen_ai.usage.input_tokens"] == 7
    assert _attrs(attempt)["gen_ai.usage.output_tokens"] == 3
    assert _attrs(attempt)["gen_ai.response.finish_reasons"] == ("stop",)
    assert _attrs(root)["llm_gateway.tokens.output"] == 3
    assert _attrs(root)["http.response.status_code"] == 200


def test_a_stream_the_caller_abandons_ends_its_request_span(
    gw: Gateway, spans: InMemorySpanExporter
) -> None:
    body = {"model": "gpt-emu", "stream": True, "messages": [{"role": "user", "content": directive(
        "go", chunks=["a "] * 50, chunk_delay_ms=50)}]}  # fmt: skip
    with gw.http() as http, http.stream(
        "POST", "/v1/chat/completions", json=body,
        headers={"authorization": f"Bearer {gw.token()}"},
    ) as response:  # fmt: skip
        request_id = response.headers["x-request-id"]
        next(response.iter_bytes())  # the first event, then the caller goes away
    trace = Trace(spans, request_id)
    assert _attrs(trace.root)["http.response.status_code"] == 499
    assert "error.type" not in _attrs(trace.root)  # the caller's doing, no failure
    assert all(s.status.status_code is StatusCode.UNSET for s in trace.spans)
    (attempt,) = trace.attempts()
    assert attempt.end_time is not None
    assert trace.root.end_time is not None
    assert attempt.end_time <= trace.root.end_time


# --- failures ------------------------------------------------------------------


def test_a_fallback_is_one_client_span_per_attempt(
    gw: Gateway, spans: InMemorySpanExporter
) -> None:
    answered = _chat(gw, {"model": "resilient", "messages": [{"role": "user", "content": "hi"}]})
    assert answered.status_code == 200
    trace = Trace(spans, answered.headers["x-request-id"])
    failed, served = trace.attempts()
    assert [failed.name, served.name] == ["chat up-down", "chat gpt-4o-mini"]
    assert _attrs(failed)["error.type"] == "upstream_unreachable"
    assert _attrs(failed)["llm_gateway.attempt"] == 1
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is None  # no message: it could quote anything
    assert failed.events == ()  # no exception event, no traceback
    assert _attrs(served)["llm_gateway.attempt"] == 2
    assert "error.type" not in _attrs(served)
    route = trace.one("Route")
    assert all(s.parent and s.parent.span_id == route.context.span_id for s in (failed, served))
    assert trace.root.name == "chat resilient"
    assert _attrs(trace.root)["llm_gateway.attempts"] == 2
    assert _attrs(trace.root)["llm_gateway.model"] == "gpt-emu"


def test_an_upstream_failure_marks_the_attempt_and_the_request(
    gw: Gateway, spans: InMemorySpanExporter
) -> None:
    answered = _chat(gw, {"model": "gpt-emu", "messages": [
        {"role": "user", "content": directive("hi", status=500)}]})  # fmt: skip
    assert answered.status_code == 502
    trace = Trace(spans, answered.headers["x-request-id"])
    (attempt,) = trace.attempts()
    assert _attrs(attempt)["error.type"] == "upstream_error"
    assert attempt.status.status_code is StatusCode.ERROR
    for span in (trace.root, trace.one("Account"), trace.one("Route")):
        assert _attrs(span)["error.type"] == "upstream_error"
        assert span.status.status_code is StatusCode.ERROR
    assert _attrs(trace.root)["http.response.status_code"] == 502


def test_a_refusal_is_the_callers_and_names_no_model_it_typed(
    gw: Gateway, spans: InMemorySpanExporter
) -> None:
    typed = f"made-up-model-{uuid.uuid4().hex}"
    answered = _chat(gw, {"model": typed, "messages": [{"role": "user", "content": "hi"}]})
    assert answered.status_code == 404
    trace = Trace(spans, answered.headers["x-request-id"])
    assert trace.root.name == "chat"
    assert _attrs(trace.root)["error.type"] == "model_not_found"
    assert _attrs(trace.root)["http.response.status_code"] == 404
    assert trace.root.status.status_code is StatusCode.UNSET  # a 4xx is the caller's
    assert trace.attempts() == []
    assert typed not in everything_in(trace.spans)


def test_a_management_action_is_traced_through_its_stages(
    gw: Gateway, spans: InMemorySpanExporter
) -> None:
    with gw.http() as http:
        listed = http.get("/v1/models", headers={"authorization": f"Bearer {gw.token()}"})
    assert listed.status_code == 200
    trace = Trace(spans, listed.headers["x-request-id"])
    assert trace.root.name == "models.list"
    assert trace.chain() == ["Account", "Authenticate", "AuthorizeAction", "RunAction"]
    assert _attrs(trace.root)["llm_gateway.endpoint"] == "models.list"


# --- what spans never carry ----------------------------------------------------


def test_no_prompt_answer_header_or_secret_is_in_any_span(
    gw: Gateway, spans: InMemorySpanExporter
) -> None:
    mark = uuid.uuid4().hex[:10]
    prompt, system = f"prompt-{mark}", f"system-{mark}"
    answer, arguments = f"answer-{mark}", f"argument-{mark}"
    header, conversation = f"header-{mark}", f"conversation-{mark}"
    token = gw.token()
    headers = {
        "authorization": f"Bearer {token}", "x-customer-note": header,
        "x-conversation-id": conversation,
    }  # fmt: skip
    tool = {"name": "lookup", "arguments": {"key": arguments}}
    ids = []
    with gw.http() as http:
        for stream in (False, True):
            for content in (
                answer_with(f"{prompt} mail {EMAIL}", reply=answer, hide=(answer,)),
                answer_with(prompt, tool_calls=[tool], hide=(arguments,)),
            ):
                sent = http.post("/v1/chat/completions", headers=headers, json={
                    "model": "gpt-emu", "stream": stream,
                    "tools": [{"type": "function", "function": {"name": "lookup"}}],
                    "messages": [{"role": "system", "content": system},
                                 {"role": "user", "content": content}],
                })  # fmt: skip
                assert sent.status_code == 200
                assert answer in sent.text or "lookup" in sent.text  # the model said it
                ids.append(sent.headers["x-request-id"])
    traced = [s for request_id in ids for s in Trace(spans, request_id).spans]
    assert len(traced) == len(ids) * (len(stage_names(gw)) + 2)
    found = everything_in(traced)
    planted = {
        "prompt": prompt, "system prompt": system, "answer": answer, "tool arguments": arguments,
        "header": header, "conversation id": conversation, "e-mail": EMAIL, "token": token,
        "provider key": PROVIDER_KEY,
    }  # fmt: skip
    assert [what for what, value in planted.items() if value in found] == []
    assert mark not in found


# --- sampling, start-up and export ---------------------------------------------


def test_sampling_leaves_requests_out_but_follows_a_sampled_caller(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db",
        {**TRACED, "OTEL_SAMPLING_RATIO": "0"},
    )  # fmt: skip
    try:
        tracing = state_of(gw).tracing
        assert tracing is not None
        exporter = InMemorySpanExporter()
        tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
        body = {"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]}
        unsampled = _chat(gw, body)
        sampled = _chat(gw, body, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert (unsampled.status_code, sampled.status_code) == (200, 200)
        trace = Trace(exporter, sampled.headers["x-request-id"])
        assert len(trace.spans) == len(stage_names(gw)) + 2
        assert len(exporter.get_finished_spans()) == len(trace.spans)  # none of the other's
    finally:
        stop_gateway(gw)


def test_the_sampling_ratio_is_a_share(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=re.escape("OTEL_SAMPLING_RATIO='1.5': expected a number from 0")
    ):
        load_settings({"OTEL_SAMPLING_RATIO": "1.5"}, env_file=None)
    with pytest.raises(
        SettingsError, match=re.escape("OTEL_TRACES_EXPORTER='jaeger': expected one of otlp")
    ):
        load_settings({"OTEL_TRACES_EXPORTER": "jaeger"}, env_file=None)


def test_an_untraced_gateway_runs_the_plain_chain(
    emulator: EmulatorServer, tmp_path: Path, gw: Gateway
) -> None:
    plain = start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db")
    try:
        state = state_of(plain)
        assert state.tracing is None
        assert state.pipeline.tracing is None
        assert state.pipeline._handler.__module__ == "llm_gateway.pipeline"
        assert state.actions._handler.__module__ == "llm_gateway.pipeline"
    finally:
        stop_gateway(plain)
    assert state_of(gw).pipeline._handler.__module__ == "llm_gateway.pipeline.trace"
    assert state_of(gw).actions._handler.__module__ == "llm_gateway.pipeline.trace"


#: What ``pip install llm-gateway`` without the extra lacks.
EXTRA = (
    "opentelemetry.sdk", "opentelemetry.sdk.resources", "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.sampling", "opentelemetry.sdk.trace.export",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)  # fmt: skip


def without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXTRA:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError


def test_without_the_extra_tracing_warns_once_and_is_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    without_the_extra(monkeypatch)
    with caplog.at_level(logging.INFO, logger="llm_gateway.observability.tracing"):
        assert start_tracing(TracingSettings(enabled=True)) is None
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert "the otel extra is not installed" in warning.getMessage()
    assert "pip install 'llm-gateway[otel]'" in warning.getMessage()


def test_without_the_extra_the_gateway_serves_untraced(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_the_extra(monkeypatch)
    gw = start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db", TRACED)
    try:
        assert state_of(gw).pipeline.tracing is None
        assert _chat(gw, {"model": "gpt-emu", "messages": [
            {"role": "user", "content": "hi"}]}).status_code == 200  # fmt: skip
    finally:
        stop_gateway(gw)
    lines = [json.loads(line) for line in gw.logs().splitlines() if line.startswith("{")]
    warned = [line for line in lines if "otel extra is not installed" in line.get("msg", "")]
    assert len(warned) == 1
    assert warned[0]["level"] == "warning"


def test_tracing_off_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    without_the_extra(monkeypatch)
    assert start_tracing(TracingSettings()) is None  # and no warning: nothing was asked


class _Collector(BaseHTTPRequestHandler):
    """``POST /v1/traces`` as an OpenTelemetry collector's OTLP/HTTP receiver answers it."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_spans_reach_an_otlp_http_collector(
    emulator: EmulatorServer, tmp_path: Path, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    url, received = collector
    env = {"OTEL_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": url,
           "OTEL_SERVICE_NAME": "gateway-under-test"}  # fmt: skip
    gw = start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db", env)
    prompt = f"prompt-{uuid.uuid4().hex}"
    stages = stage_names(gw)
    try:
        answered = _chat(gw, {"model": "gpt-emu", "stream": True, "messages": [
            {"role": "user", "content": prompt}]})  # fmt: skip
        assert answered.status_code == 200
    finally:
        stop_gateway(gw)  # the shutdown exports what is left
    assert received, "the collector received nothing"
    assert {path for path, _ in received} == {"/v1/traces"}
    assert all(prompt.encode() not in body for _, body in received)
    exported = [ExportTraceServiceRequest.FromString(body) for _, body in received]
    services, found = set(), {}
    for request in exported:
        for resource_spans in request.resource_spans:
            services.add(_values(resource_spans.resource.attributes)["service.name"])
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "llm_gateway"
                found.update({span.name: span for span in scope_spans.spans})
    assert services == {"gateway-under-test"}
    root, attempt = found["chat gpt-emu"], found["chat gpt-4o-mini"]
    assert root.kind == Span.SPAN_KIND_SERVER
    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.trace_id == root.trace_id
    assert _values(root.attributes)["llm_gateway.request_id"] == answered.headers["x-request-id"]
    assert _values(attempt.attributes)["gen_ai.provider.name"] == "openai"
    assert _values(attempt.attributes)["gen_ai.request.stream"] is True
    assert len(found) == len(stages) + 2


def _values(attributes: Sequence[KeyValue]) -> dict[str, object]:
    """OTLP attributes as plain values (only the kinds the gateway sends)."""
    values: dict[str, object] = {}
    for a in attributes:
        kind = a.value.WhichOneof("value")
        values[a.key] = getattr(a.value, kind) if kind is not None else None
    return values


class _AwayCollector(SpanExporter):
    """An exporter whose collector never answers: an export waits until it is shut down."""

    def __init__(self) -> None:
        self.exporting = threading.Event()
        self.stopped = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.stopped.wait()
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.stopped.set()


def test_a_stopping_gateway_gives_up_on_a_collector_that_is_away() -> None:
    tracing = start_tracing(TracingSettings(enabled=True, exporter=TraceExporter.NONE))
    assert tracing is not None
    away = _AwayCollector()
    tracing.provider.add_span_processor(BatchSpanProcessor(away))
    tracing.exporter = away
    tracing.tracer.start_span("last").end()
    tracing.shutdown(wait_s=0.05)  # would wait for ever without giving up
    assert away.exporting.is_set()
    assert away.stopped.is_set()
