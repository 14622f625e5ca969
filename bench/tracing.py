"""What OpenTelemetry traces add to a request, measured in-process (``python -m bench.tracing``).

The pipeline is the chat pipeline's shape (nine stages and the provider
call, as a gateway with limits, DLP, confirmations and grounding has) with
stages that only pass the request on, and a provider call that answers at
once: what is left is the cost of the chain itself and of its spans. Each
figure is the median (and 99th percentile) over many requests of the whole
pipeline:

* off: ``OTEL_ENABLED=false``, the plain chain, as without traces at all;
* on: every request sampled, its eleven spans (request, nine stages, the
  attempt) ended into a batch processor, whose exporter (here a stub) runs on
  its own thread;
* on, not sampled: ``OTEL_SAMPLING_RATIO=0``, the spans made but not recorded;
* a stream of 20 chunks, off and on;
* the OTLP encoding of one request's spans (what the exporter's thread then
  does per request, besides the HTTP post, which carries hundreds of spans).

``--served`` measures the served gateway instead (``llm-gateway serve`` in a
subprocess, DLP and limits on, in front of the emulator): its CPU time per
request (all threads: the exporter's included), over sequential requests,
with traces off and on (every request sampled, sent over OTLP/HTTP to a
receiver in this process that discards them).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench import procs, targets
from bench.stages import DEPLOYMENT, Timing, _context, _time, _time_async
from llm_gateway.api import openai as openai_door
from llm_gateway.chat import (
    ChatResponse,
    EventStream,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    Usage,
)
from llm_gateway.emulators import EmulatorServer
from llm_gateway.observability.tracing import Tracing, start_tracing
from llm_gateway.pipeline import Pipeline
from llm_gateway.pipeline.call import CallProvider
from llm_gateway.pipeline.context import Attempt, Next, Outcome, RequestContext, Stage
from llm_gateway.settings import TraceExporter, TracingSettings
from llm_gateway.transport import AiohttpTransport

STAGES = (
    "Account", "Authenticate", "ParseRequest", "Authorize", "Limit", "Inspect", "Confirm",
    "Ground", "Route",
)  # fmt: skip
CHUNKS = 20


def _passing(name: str) -> Stage:
    """A stage that only calls the rest, named as the real one (its span's name)."""

    async def call(self: object, ctx: RequestContext, call_next: Next) -> Outcome:
        return await call_next(ctx)

    stage: Stage = type(name, (), {"__call__": call})()
    return stage


class _Answer(CallProvider):
    """The provider call, answering at once (as a whole answer or a stream)."""

    def __init__(self) -> None:
        super().__init__(AiohttpTransport())
        self.response = ChatResponse("bench", "The answer is forty-two.", usage=Usage(250, 60))

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.chat is not None
        if not ctx.chat.stream:
            return self.response
        return EventStream(StreamStart("bench"), _events())


async def _events() -> AsyncGenerator[StreamEvent, None]:
    for _ in range(CHUNKS):
        yield TextDelta("forty-two ")
    yield StreamEnd("stop", Usage(250, 60))


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _tracing(ratio: float) -> Tracing:
    settings = TracingSettings(enabled=True, exporter=TraceExporter.NONE, sampling_ratio=ratio)
    tracing = start_tracing(settings)
    assert tracing is not None
    # A queue deep enough that the benchmark's back-to-back requests drop no span.
    tracing.provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=2**20))
    return tracing


async def _per_request(pipeline: Pipeline, stream: bool) -> Timing:
    ctx = _context()
    ctx.chat = openai_door.parse_request(
        b'{"model": "bench", "messages": [{"role": "user", "content": "hi"}]}'
    )
    ctx.chat.stream = stream

    async def one() -> None:
        ctx.attempts[:] = [Attempt(DEPLOYMENT)]  # as Route leaves it for the call
        outcome = await pipeline(ctx)
        if isinstance(outcome, EventStream):
            async for _ in outcome:
                pass
            await outcome.aclose()

    return await _time_async(one, 20_000)


def _stages() -> list[Stage]:
    return [*(_passing(name) for name in STAGES), _Answer()]


async def _measure() -> dict[str, Timing]:
    on, unsampled = _tracing(1.0), _tracing(0.0)
    results = {
        "off": await _per_request(Pipeline(_stages()), stream=False),
        "on (every request sampled)": await _per_request(Pipeline(_stages(), on), stream=False),
        "on, not sampled (OTEL_SAMPLING_RATIO=0)": await _per_request(
            Pipeline(_stages(), unsampled), stream=False
        ),
        f"stream of {CHUNKS} chunks, off": await _per_request(Pipeline(_stages()), stream=True),
        f"stream of {CHUNKS} chunks, on": await _per_request(Pipeline(_stages(), on), stream=True),
    }
    # One request's spans, as the exporter's thread encodes them into its protobuf.
    memory = InMemorySpanExporter()
    recorded = _tracing(1.0)
    recorded.provider.add_span_processor(SimpleSpanProcessor(memory))
    await _per_request(Pipeline(_stages(), recorded), stream=False)
    spans = memory.get_finished_spans()[-len(STAGES) - 2 :]
    assert len({s.context.trace_id for s in spans if s.context is not None}) == 1
    results[f"OTLP encoding of one request's {len(spans)} spans"] = _time(
        lambda: encode_spans(spans).SerializeToString(), 5000
    )
    for tracing in (on, unsampled, recorded):
        tracing.shutdown()
    return results


def report() -> str:
    results = asyncio.run(_measure())
    lines = ["| pipeline (in-process, per request) | median µs | p99 µs |", "|---|---:|---:|"]
    lines += [f"| {name} | {median:.1f} | {p99:.1f} |" for name, (median, p99) in results.items()]
    return "\n".join(lines)


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that takes every export and keeps nothing."""

    received = [0]  # bytes of spans taken

    def do_POST(self) -> None:
        self.received[0] += len(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _served_cpu_us(upstream: str, work: Path, env: dict[str, str], requests: int) -> float:
    """The served gateway's CPU microseconds per sequential chat request."""
    config = work / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "routing_policies.yaml").write_text(targets.routing_yaml(upstream))
    (config / "rate_limits.yaml").write_text(targets.RATE_LIMITS)
    port = procs.free_port()
    service = procs.start(
        work.name, [sys.executable, "-m", "llm_gateway.cli", "serve"],
        procs.Ready(f"http://127.0.0.1:{port}", "/ready"), cpus=None, log_dir=work.parent,
        cwd=work, env={
            "API_PORT": str(port), "CONFIG_DIR": str(config), "DATA_DIR": str(work / "data"),
            "JWT_SECRET": targets.JWT_SECRET, "DEMO_MODEL": "off", "LOG_LEVEL": "warning",
            "DLP_ENABLED": "true", "DLP_NER": "off", "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_PER_TENANT": "100000000", "POLICY_DIR": str(targets.REPO / "policies"),
            "OPA_POLICY_PATH": "/v1/data/llm/authz/decision", **env,
        },
    )  # fmt: skip
    body = {"model": "bench", "messages": [{"role": "user", "content": "Summarise the report."}]}
    headers = {"authorization": targets.bearer()}
    try:
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as http:
            for _ in range(300):  # warm-up
                http.post("/v1/chat/completions", json=body).raise_for_status()
            before = procs.cpu_seconds(service.process.pid)
            for _ in range(requests):
                http.post("/v1/chat/completions", json=body).raise_for_status()
            return (procs.cpu_seconds(service.process.pid) - before) / requests * 1e6
    finally:
        service.stop()


def served_report(requests: int = 3000) -> str:
    upstream = EmulatorServer().start_in_thread()
    lines = ["| served gateway, sequential requests | CPU µs per request |", "|---|---:|"]
    try:
        with tempfile.TemporaryDirectory() as tmp, _sink() as collector:
            for name, env in (
                ("traces off", {}),
                ("traces on, every request sampled, OTLP/HTTP",
                 {"OTEL_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}),
                ("traces on, 10% sampled",
                 {"OTEL_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
                  "OTEL_SAMPLING_RATIO": "0.1"}),
            ):  # fmt: skip
                work = Path(tmp) / name.split(",")[0].replace(" ", "-") / str(len(lines))
                work.mkdir(parents=True)
                exported = _Sink.received[0]
                cpu = _served_cpu_us(upstream.base_url, work, env, requests)
                lines.append(f"| {name} | {cpu:.0f} |")
                # The spans did go out (else the gateway ran some other, untraced, code).
                assert (_Sink.received[0] > exported) == bool(env), name
    finally:
        upstream.stop()
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--served", action="store_true", help="the served gateway's CPU")
    print(served_report() if parser.parse_args().served else report())
