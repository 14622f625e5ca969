"""OpenTelemetry traces: off by default; on, one span per request, per stage and per
upstream attempt, sent over OTLP/HTTP (see observability.tracing)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from llm_gateway.settings.declare import Section, boolean, choice, fraction, http_url, text, var


class TraceExporter(StrEnum):
    """Where finished spans go: the standard ``OTEL_TRACES_EXPORTER`` values we support."""

    OTLP = "otlp"  # OTLP/HTTP with protobuf, to OTEL_EXPORTER_OTLP_ENDPOINT
    CONSOLE = "console"  # one JSON object per span on stdout, to look at without a collector
    NONE = "none"  # spans are made (and the caller's trace continued) but sent nowhere


@dataclass(frozen=True, slots=True)
class TracingSettings(Section):
    """Whether spans are made, where they are sent, and what share of requests is traced."""

    TITLE: ClassVar[str] = "Traces"

    enabled: bool = var(
        "OTEL_ENABLED", boolean, False,
        "OpenTelemetry traces: a span per request, per pipeline stage and per upstream "
        "attempt, never prompt or answer text (needs the otel extra: "
        "`pip install 'llm-gateway[otel]'`; without it the gateway warns and runs untraced)",
    )  # fmt: skip
    exporter: TraceExporter = var(
        "OTEL_TRACES_EXPORTER", choice(TraceExporter), TraceExporter.OTLP,
        "otlp (OTLP/HTTP protobuf), console (JSON on stdout) or none",
    )  # fmt: skip
    endpoint: str = var(
        "OTEL_EXPORTER_OTLP_ENDPOINT", http_url, "http://localhost:4318",
        "the collector's OTLP/HTTP base URL: spans are POSTed to <endpoint>/v1/traces "
        "(OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TIMEOUT are read by the exporter)",
    )  # fmt: skip
    service_name: str = var(
        "OTEL_SERVICE_NAME", text, "llm-gateway", "the traces' service.name",
    )  # fmt: skip
    sampling_ratio: float = var(
        "OTEL_SAMPLING_RATIO", fraction, 1.0,
        "the share of requests traced (0 to 1, by trace id); a request that comes with a "
        "traceparent follows its caller's sampling decision",
    )  # fmt: skip
