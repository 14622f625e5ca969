"""OpenTelemetry traces, when ``OTEL_ENABLED=true`` and the ``otel`` extra is installed.

:func:`start_tracing` builds the gateway's own tracer provider (its service
name, sampler and exporter) in the lifespan; the pipeline makes the spans
(:mod:`llm_gateway.pipeline.trace`). The provider is never the process's
global one: FastAPI's own telemetry, which follows the global provider, stays
off, and two gateways in one process (as in the tests) trace apart.

The SDK and the exporter are imported here and only here, when tracing is
on: the core install does without them, and a gateway whose settings ask for
traces without the extra logs one warning and serves untraced.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_gateway import __version__
from llm_gateway.settings.tracing import TraceExporter, TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

#: The instrumentation scope every span of the gateway is made under.
SCOPE = "llm_gateway"
EXTRA_MISSING = (
    "OTEL_ENABLED=true but the otel extra is not installed (%s is missing): the gateway "
    "runs without traces; install it with pip install 'llm-gateway[otel]'"
)


#: How long a stopping gateway waits for the collector to take the last spans. The
#: exporter retries an unreachable one for up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s).
EXPORT_WAIT_S = 2.0


@dataclass(slots=True)
class Tracing:
    """The tracer the pipeline makes its spans with, and the provider that exports them."""

    provider: TracerProvider
    tracer: Tracer
    exporter: SpanExporter | None = None

    def shutdown(self, wait_s: float = EXPORT_WAIT_S) -> None:
        """Export what is left and stop, giving up on a collector that has not taken it
        within ``wait_s`` (blocking: call it from a thread)."""
        give_up = threading.Timer(wait_s, self._give_up)
        give_up.start()
        try:
            self.provider.shutdown()
        finally:
            give_up.cancel()

    def _give_up(self) -> None:
        if self.exporter is not None:
            self.exporter.shutdown()  # ends the exporter's retries, and with them the flush


def start_tracing(settings: TracingSettings) -> Tracing | None:
    """The gateway's tracing, or None when it is off or the extra is missing."""
    if not settings.enabled:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        exporter = _exporter(settings)
    except ImportError as exc:
        log.warning(EXTRA_MISSING, exc.name or "opentelemetry")
        return None
    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": __version__}
    )
    sampler = ParentBased(TraceIdRatioBased(settings.sampling_ratio))
    provider = TracerProvider(sampler=sampler, resource=resource, shutdown_on_exit=False)
    if exporter is not None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(exporter))
    where = settings.endpoint if settings.exporter is TraceExporter.OTLP else "stdout"
    log.info(
        "traces: %s to %s, %g of requests sampled",
        settings.exporter.value, where if exporter is not None else "nowhere",
        settings.sampling_ratio,
    )  # fmt: skip
    return Tracing(provider, provider.get_tracer(SCOPE, __version__), exporter)


def _exporter(settings: TracingSettings) -> SpanExporter | None:
    if settings.exporter is TraceExporter.OTLP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"{settings.endpoint}/v1/traces")
    if settings.exporter is TraceExporter.CONSOLE:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    return None
