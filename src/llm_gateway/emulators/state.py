"""The emulator's per-app state: its settings, the request log, and shutdown signalling.

One :class:`EmulatorState` lives on each app (``app.state.emulator``). The
request log is how tests see exactly what the gateway sent upstream. The
shutdown signal exists because emulated answers can wait for a long time
(``hang`` sleeps for an hour): stopping the server must wake every such wait,
or a test session would hang on teardown.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

#: How many provider requests the log keeps (oldest dropped first).
REQUEST_LOG_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Settings fixed when the app is created."""

    api_key: str | None = None
    default_latency_ms: int = 0
    reply_prefix: str = "Echo: "


class EmulatorState:
    """Request log plus the "server is closing" signal shared by all in-flight answers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._signals: set[asyncio.Future[str]] = set()
        self.closing = False

    async def record(self, request: Request) -> bytes:
        """Log a provider request (path, lowercased headers, parsed body) and return its body.

        Repeated header names are joined with ", " as HTTP allows; a body that is
        not JSON is logged as ``None`` so tests can still see that it arrived.
        """
        body = await request.body()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any = None
        if body:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
        self._log.append({"path": request.url.path, "headers": headers, "body": parsed})
        return body

    def requests(self) -> list[dict[str, Any]]:
        """The logged requests, oldest first."""
        return list(self._log)

    def clear(self) -> None:
        """Forget every logged request."""
        self._log.clear()

    @property
    def in_flight(self) -> int:
        """How many answers are being delivered right now (a test can wait for zero)."""
        return len(self._signals)

    def stop_signal(self) -> asyncio.Future[str]:
        """A future resolved with ``"closing"`` when the server shuts down.

        Answers also resolve it themselves with ``"disconnect"`` when their client
        goes away; :meth:`release` must be called when the answer is done.
        """
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self.closing:
            future.set_result("closing")
        self._signals.add(future)
        return future

    def release(self, future: asyncio.Future[str]) -> None:
        """Stop tracking an answer's signal."""
        self._signals.discard(future)

    def close(self) -> None:
        """Wake every waiting answer; must run on the loop that serves the app."""
        self.closing = True
        for future in list(self._signals):
            if not future.done():
                future.set_result("closing")

    def reopen(self) -> None:
        """Accept long waits again (a stopped server's app may be served anew)."""
        self.closing = False
