"""The HTTP server: uvicorn's httptools protocol, with the limits a server facing strangers needs.

uvicorn reads a request head of any size (httptools concatenates a header
value as it arrives, so a 32 MiB header costs far more than 32 MiB), accepts
any number of headers, and waits forever for a client that stops half-way
through its head or its body. Every such connection holds memory and a file
descriptor without ever sending a credential. :class:`GuardedHttpProtocol`
adds, per connection:

* the request head (request line and headers) is at most ``max_header_bytes``
  and ``max_headers`` headers, else 431 and the connection is closed; bytes
  beyond the limit are never handed to the parser;
* the head must arrive within ``header_timeout_s`` of the connection opening
  or of its first byte (408), and the body may not pause for more than
  ``body_timeout_s`` between two reads (the connection is closed; the
  request is recorded as timed out). One watchdog per connection checks
  both every quarter of the shorter timeout, so a limit holds to within
  a quarter of itself;
* one client address may hold at most ``max_connections_per_client`` open
  connections; the next ones are answered 503 and closed. Behind a proxy
  every client has the proxy's address: raise the bound or set it to 0 (off).

Refusals made here, before a request exists, are answered in the native
error format with a fresh request id and logged; they never reach the
pipeline, so they have no audit row (nor does a request uvicorn cannot parse).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from llm_gateway.api.http import READ_TIMEOUT
from llm_gateway.pipeline.context import new_request_id
from llm_gateway.settings import HttpSettings
from llm_gateway.shutdown import DRAIN, Drain

log = logging.getLogger(__name__)

LINGER_S = 2.0  # how long a refused connection is drained before it is closed


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what a client may make the server hold; 0 switches one off."""

    max_header_bytes: int = 65_536
    max_headers: int = 100
    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    max_connections_per_client: int = 256

    @classmethod
    def of(cls, http: HttpSettings) -> HttpLimits:
        return cls(
            max_header_bytes=http.max_header_bytes,
            max_headers=http.max_headers,
            header_timeout_s=http.header_timeout_s,
            body_timeout_s=http.body_timeout_s,
            max_connections_per_client=http.max_connections_per_client,
        )


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, carrying the limits to every worker process.

    uvicorn's own proxy-header handling is off: by default it believes any
    ``X-Forwarded-For`` sent from 127.0.0.1, which would let a local client
    choose its address. The gateway reads the header itself, from the proxies
    named in TRUSTED_PROXIES only (:func:`llm_gateway.api.http.client_ip`).
    """

    def __init__(self, app: Any, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpProtocol, proxy_headers=False, **kwargs)
        self.limits = limits


def serve(config: ServerConfig) -> None:
    """Run the server as ``uvicorn.run`` would: in this process, or in worker processes."""
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()


class GuardedHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, read within :class:`HttpLimits`."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = getattr(config, "limits", None)
        self.limits = limits if isinstance(limits, HttpLimits) else HttpLimits()
        self._in_head = True  # reading a request head (or waiting for one)
        self._head_bytes = 0
        self._header_count = 0
        self._refused = False
        # When the head being read began, and when the body last made progress
        # (None: not reading one). One watchdog timer per connection checks both:
        # cheaper than arming and cancelling timers at every request.
        self._head_since: float | None = None
        self._body_since: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        timeouts = [t for t in (self.limits.header_timeout_s, self.limits.body_timeout_s) if t > 0]
        self._tick = max(min(timeouts) / 4, 0.01) if timeouts else 0.0

    # --- connections --------------------------------------------------------

    def shutdown(self) -> None:
        """The server is stopping: tell the app's streams (see :class:`Drain`), then close."""
        drain = self.app_state.get(DRAIN)
        if isinstance(drain, Drain):
            drain.begin()
        super().shutdown()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        bound = self.limits.max_connections_per_client
        if bound and self.client is not None:
            host = self.client[0]
            held = sum(1 for c in self.connections if _host(c) == host and not _refused(c))
            if held > bound:
                message = "too many open connections from this address"
                self._refuse(503, "too_many_connections", message)
                return
        self._head_since = self.loop.time()  # a new connection owes its first head
        self._arm_watchdog()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_watchdog()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head and self._head_since is None:
            self._head_since = self.loop.time()
        limit = self.limits.max_header_bytes
        if not self._in_head or not limit:
            super().data_received(data)
            return
        room = limit - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # More than the head may hold: the parser sees only what fits. If the
        # head ends within it, the rest is the body (or the next request).
        self._head_bytes = limit
        super().data_received(data[:room])
        if self._in_head:
            self._refuse(431, "headers_too_large", f"the request head is larger than {limit} bytes")
            return
        super().data_received(data[room:])

    # --- parser callbacks ---------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_since = False, None
        bound = self.limits.max_headers
        if bound and self._header_count > bound:
            self._refuse(431, "too_many_headers", f"the request has more than {bound} headers")
            return
        super().on_headers_complete()
        self._body_since = self.loop.time()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        super().on_body(body)
        self._body_since = self.loop.time()

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._body_since = None
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        super().on_message_complete()

    # --- the watchdog -------------------------------------------------------

    def _arm_watchdog(self) -> None:
        if self._tick:
            self._watchdog = self.loop.call_later(self._tick, self._watch)

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _watch(self) -> None:
        """Every tick: has a head or a body been waited for longer than it may be?"""
        self._watchdog = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        head, body = self.limits.header_timeout_s, self.limits.body_timeout_s
        if head and self._head_since is not None and now - self._head_since > head:
            self._head_timed_out()
            return
        if body and self._body_since is not None and now - self._body_since > body:
            if not self.flow.read_paused:
                self._body_timed_out()
                return
            self._body_since = now  # the app is not reading: the client is not the slow one
        self._arm_watchdog()

    def _head_timed_out(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier request's answer is still going out
            return
        self._refuse(408, "request_timeout", "the request head did not arrive in time")

    def _body_timed_out(self) -> None:
        if self.cycle is None:
            return
        # The app sees the connection go; the extension tells it why.
        self.cycle.scope.setdefault("extensions", {})[READ_TIMEOUT] = {}
        self.transport.close()

    # --- refusals -----------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the native error format and close the connection."""
        self._refused = True
        self._cancel_watchdog()
        request_id = new_request_id()
        log.warning(
            "connection refused",
            extra={"request_id": request_id, "status": status, "error_code": code,
                   "client": self.client[0] if self.client else None},
        )  # fmt: skip
        body = orjson.dumps(
            {"error": {"type": "invalid_request", "code": code, "message": message,
                       "request_id": request_id}}
        )  # fmt: skip
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-request-id: " + request_id.encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        if self.transport.is_closing():
            return
        self.transport.write(b"".join(head) + body)
        # Closing now, with the client's bytes still arriving, would reset the
        # connection and lose the answer; so stop writing, read and drop what
        # still comes for a moment, then close (nginx's lingering close).
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def _host(connection: Any) -> str | None:
    client = getattr(connection, "client", None)
    return client[0] if client else None


def _refused(connection: Any) -> bool:
    """A refused connection is closing (within ``LINGER_S``): it holds no place."""
    return bool(getattr(connection, "_refused", False))
