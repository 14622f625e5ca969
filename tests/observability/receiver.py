"""A webhook receiver on 127.0.0.1 for the alerts' tests: records every POST, answers as told.

It runs in a thread of its own (``http.server``), so it serves the in-process
gateway's event loop and a test's loop alike, and a test can make it hang
(:meth:`Receiver.hold`) without blocking either.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    raw: str
    body: Any  # the decoded JSON


class Receiver:
    def __init__(self) -> None:
        self.token = uuid.uuid4().hex  # the URL's secret part, as a Slack webhook's
        self.received: list[Received] = []
        self.answered = 0
        self.answers: deque[tuple[int, dict[str, str]]] = deque()  # then 200
        self._released = threading.Event()
        self._released.set()
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/{self.token}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, **headers: str) -> None:
        """The next request's answer (a queue: the ones after it get theirs, or 200)."""
        self.answers.append((status, headers))

    def hold(self) -> None:
        """Requests arriving from now on get no answer until :meth:`release`."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """The first ``count`` requests, once they have arrived (AssertionError if they don't)."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.received) >= count, timeout_s)
            assert arrived, f"expected {count} webhook calls, got {len(self.received)}"
            return self.received[:count]

    async def arrivals(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        return await asyncio.to_thread(self.wait_for, count, timeout_s)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                got = Received(self.path, dict(self.headers.items()), raw, json.loads(raw))
                with receiver._changed:
                    receiver.received.append(got)
                    answer = receiver.answers.popleft() if receiver.answers else (200, {})
                    receiver._changed.notify_all()
                receiver._released.wait(30)
                status, headers = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with receiver._changed:
                    receiver.answered += 1
                    receiver._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
