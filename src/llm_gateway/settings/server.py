"""The HTTP server's settings and the logs': what ``llm-gateway serve`` starts with."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from llm_gateway.settings.declare import Section, choice, integer, seconds, text, var


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    JSON = "json"  # one object per line
    TEXT = "text"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR blocks (``10.0.0.0/8, ::1``)."""
    found = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"expected addresses or CIDR blocks, {part!r} is neither") from None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class HttpSettings(Section):
    """Where the gateway listens and what a client may make it hold (0 switches a limit off)."""

    TITLE: ClassVar[str] = "HTTP"

    host: str = var("API_HOST", text, "127.0.0.1", "where the gateway listens")
    port: int = var("API_PORT", integer(0, 65535), 8080, "the port it listens on")
    workers: int = var("WORKERS", integer(1, 256), 1, "worker processes of `llm-gateway serve`")
    gc_gen0_threshold: int = var(
        "GC_GEN0_THRESHOLD", integer(0, 10_000_000), 20_000,
        "allocations between the garbage collector's young passes in a serving worker, whose "
        "start-up heap is also frozen (0: Python's defaults, 700 and nothing frozen)",
    )  # fmt: skip
    max_body_bytes: int = var(
        "MAX_BODY_BYTES", integer(1024, 1 << 30), 2 * 1024 * 1024,
        "largest request body (413 beyond)",
    )  # fmt: skip
    max_header_bytes: int = var(
        "HTTP_MAX_HEADER_BYTES", integer(0, 1 << 24), 65_536,
        "request line and headers, in bytes (431 beyond)",
    )  # fmt: skip
    max_headers: int = var(
        "HTTP_MAX_HEADERS", integer(0, 100_000), 100, "number of headers (431 beyond)"
    )
    header_timeout_s: float = var(
        "HTTP_HEADER_TIMEOUT_SECONDS", seconds, 15.0,
        "seconds for the whole head, from its first byte (408)",
    )  # fmt: skip
    body_timeout_s: float = var(
        "HTTP_BODY_TIMEOUT_SECONDS", seconds, 30.0,
        "the longest pause between two reads of a body, in seconds (408)",
    )  # fmt: skip
    keep_alive_s: int = var(
        "HTTP_KEEP_ALIVE_SECONDS", integer(1, 3600), 75,
        "how long an idle kept-alive connection stays open. A request sent as the server closes "
        "one is lost (no answer, no audit row), so this must be longer than the idle timeout of "
        "whatever reuses connections to the gateway: load balancers (AWS ALB and nginx upstreams "
        "60 s; Google Cloud's 600 s: set 620 there) and clients (httpx and the SDKs 5 s)",
    )  # fmt: skip
    shutdown_grace_s: float = var(
        "SHUTDOWN_GRACE_SECONDS", seconds, 10.0,
        "how long a stopping server (SIGTERM) lets requests in flight finish; a stream still "
        "running near the end is ended with the format's error event (server_shutdown). Keep "
        "it below the orchestrator's kill timeout (Kubernetes: 30 s)",
    )  # fmt: skip
    max_connections_per_client: int = var(
        "HTTP_MAX_CONNECTIONS_PER_CLIENT", integer(0, 1 << 20), 256,
        "open connections per client address (503 beyond; behind a proxy raise it or set 0)",
    )  # fmt: skip
    trusted_proxies: tuple[Network, ...] = var(
        "TRUSTED_PROXIES", networks, (),
        "proxies whose X-Forwarded-For names the client (comma-separated CIDRs)",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LogSettings(Section):
    """How the gateway logs (never a prompt's text: see observability.logging)."""

    TITLE: ClassVar[str] = "Logs"

    level: LogLevel = var(
        "LOG_LEVEL", choice(LogLevel), LogLevel.INFO, "debug, info, warning or error"
    )
    format: LogFormat = var(
        "LOG_FORMAT", choice(LogFormat), LogFormat.JSON, "json (one object per line) or text"
    )
