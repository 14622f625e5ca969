"""A stand-in for an OPA server's Data API, for tests: programmable, and it records its requests.

The real ``opa`` binary cannot be installed where these tests run, so this
server answers as OPA's REST API documents ``POST /v1/data/{path}``
(and ``POST /v1/query`` for the one query form the gateway sends, a batch of
decisions ``with input as`` each document, answered with the same policy)::

    request   {"input": <the input document>}
    200       {"result": <the document at path>}      the rule is defined for this input
    200       {}                                      undefined: no "result" key at all
    400       {"code": "invalid_parameter", "message": ..., "errors": [...]}
    500       {"code": "internal_error", "message": ...}

What it answers is set per test with :meth:`OpaServer.answer`: one :class:`Reply`
for every request, several in turn (the last one repeats), or a function of the
path and the input (a policy written in Python). Every request is recorded,
before any delay, so that a test can count attempts, including timed-out ones.

Run it in the test's event loop (``async with OpaServer() as opa``) or in a
thread of its own (``start_in_thread()`` / ``stop()``) for a gateway subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

START_TIMEOUT_SECONDS = 10.0
_BATCH = re.compile(
    r"decisions := \{i: d \| some i; doc := input\.batch\[i\]; "
    r"d := data\.([\w.]+) with input as doc\}"
)


@dataclass(frozen=True)
class Reply:
    """One answer: a status, a JSON body (or raw bytes) and an optional delay before it."""

    status: int = 200
    body: Any = None
    delay_s: float = 0.0

    @classmethod
    def result(cls, value: Any, *, delay_s: float = 0.0) -> Reply:
        return cls(200, {"result": value}, delay_s)

    @classmethod
    def undefined(cls) -> Reply:
        return cls(200, {})

    @classmethod
    def bad_request(cls, message: str = "input document is not an object") -> Reply:
        return cls(400, {
            "code": "invalid_parameter",
            "message": message,
            "errors": [{"code": "invalid_parameter", "message": message}],
        })  # fmt: skip

    @classmethod
    def internal_error(cls, message: str = "storage error") -> Reply:
        return cls(500, {"code": "internal_error", "message": message})

    @classmethod
    def raw(cls, payload: bytes, status: int = 200) -> Reply:
        return cls(status, payload)


#: A policy written in Python: (Data API path, input document) -> the reply.
Policy = Callable[[str, Any], Reply]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    content_type: str
    body: Any  # the decoded JSON body, or the raw text when it is not JSON


class OpaServer:
    def __init__(self, policy: Policy | None = None) -> None:
        self.requests: list[Received] = []
        self._policy: Policy = policy or (lambda _path, _input: Reply.result(True))
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """What ``OPA_URL`` would be set to."""
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *replies: Reply | Policy) -> None:
        """Answer with these replies in turn, the last one for every request after them."""
        if not replies:
            raise ValueError("answer() needs at least one reply")
        queue = list(replies)

        def next_reply(path: str, document: Any) -> Reply:
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
            return reply if isinstance(reply, Reply) else reply(path, document)

        self._policy = next_reply

    @property
    def count(self) -> int:
        return len(self.requests)

    def inputs(self) -> list[Any]:
        return [r.body.get("input") if isinstance(r.body, dict) else None for r in self.requests]

    # -- the Data API ---------------------------------------------------------

    async def _data(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Received(request.method, request.path, request.content_type, body))
        if not isinstance(body, dict):
            reply = Reply.bad_request("request body must be a JSON object")
        else:
            reply = self._policy(request.path, body.get("input"))
        if reply.delay_s:
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):  # woken early when the server stops
                await asyncio.wait_for(self._closing.wait(), reply.delay_s)
        if isinstance(reply.body, bytes):
            return web.Response(status=reply.status, body=reply.body)
        return web.json_response(reply.body, status=reply.status)

    async def _query(self, request: web.Request) -> web.StreamResponse:
        """The Query API, for the batch the gateway asks: each document decided at its path."""
        body = json.loads(await request.read())
        self.requests.append(Received(request.method, request.path, request.content_type, body))
        match = _BATCH.fullmatch(body.get("query", ""))
        if match is None:
            return web.json_response(Reply.bad_request("unsupported query").body, status=400)
        path = "/v1/data/" + match.group(1).replace(".", "/")
        decisions = {}
        for i, document in enumerate(body["input"]["batch"]):
            reply = self._policy(path, document)
            if reply.status != 200 or isinstance(reply.body, bytes):
                return web.json_response(reply.body, status=reply.status)
            if "result" in reply.body:  # undefined results are absent, as in OPA
                decisions[str(i)] = reply.body["result"]
        return web.json_response({"result": [{"decisions": decisions}]})

    # -- in the caller's loop -------------------------------------------------

    async def start(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/data/{path:.*}", self._data)
        app.router.add_post("/v1/query", self._query)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- in a thread of its own -----------------------------------------------

    def start_in_thread(self) -> Self:
        """Serve from a daemon thread with its own event loop; returns once it accepts."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                raise
            ready.set()
            await self._stopped.wait()
            await self.aclose()

        self._thread = threading.Thread(
            target=lambda: asyncio.run(main()), name="opa-stand-in", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS) or failure:
            raise RuntimeError("the OPA stand-in failed to start") from (
                failure[0] if failure else None
            )
        return self

    def stop(self) -> None:
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is None or stopped is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may have closed already
            loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout=5)
        self._thread = None
