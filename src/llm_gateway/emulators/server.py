"""Running the emulator: in the caller's event loop, in a thread of its own, or in the foreground.

Tests need a real socket (the SDKs and the gateway speak HTTP), an ephemeral
port so parallel runs never collide, and a stop that cannot hang even while a
``hang`` answer or an open stream is in flight. So the socket is bound here
(port 0, the kernel picks; no bind error can surface inside uvicorn, which
would ``sys.exit``), uvicorn serves it, and stopping first wakes every waiting
answer through the app state, then asks uvicorn to exit, then forces it, then
cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

from llm_gateway.emulators.app import create_emulator_app, emulator_state

#: How long each stage of a stop may take before the next, harsher one.
STOP_STAGE_SECONDS = 2.0
START_TIMEOUT_SECONDS = 10.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (pytest, the gateway)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Do not install SIGINT/SIGTERM handlers: the host process owns them."""
        yield


async def _poll(condition: Callable[[], bool], interval: float) -> None:
    """Wait until ``condition()`` holds: uvicorn exposes its state as plain flags, not events."""
    while not condition():  # noqa: ASYNC110 - nothing to await but the flag itself
        await asyncio.sleep(interval)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``port=0`` gets an ephemeral one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


KEEP_ALIVE_SECONDS = 75


def _config(app: Starlette, log_level: str | None, *, embedded: bool) -> uvicorn.Config:
    """uvicorn settings; an embedded server leaves the host's logging configuration alone."""
    return uvicorn.Config(
        app,
        lifespan="off",
        log_level=log_level,
        access_log=not embedded,
        log_config=None if embedded else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=int(STOP_STAGE_SECONDS),
        # As the providers' front ends (and nginx, 75 s) do: idle connections outlive the
        # gateway's own keep-alive (30 s), so the gateway, not the server, closes them.
        # With uvicorn's 5 s, a request could race the server's close on a reused
        # connection and fail as unreachable.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


class EmulatorServer:
    """The emulator on ``127.0.0.1`` and an ephemeral port.

    Use ``async with EmulatorServer() as srv:`` inside a running event loop, or
    ``srv.start_in_thread()`` / ``srv.stop()`` (or ``with EmulatorServer() as
    srv:``) from synchronous code; ``srv.base_url`` is then e.g.
    ``http://127.0.0.1:54321``. ``log_level=None`` (the default) leaves the
    process's logging untouched (uvicorn would otherwise reset its loggers' levels).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default_latency_ms: int = 0,
        reply_prefix: str = "Echo: ",
        host: str = "127.0.0.1",
        port: int = 0,
        app: Starlette | None = None,
        log_level: str | None = None,
    ) -> None:
        self.app = app or create_emulator_app(
            api_key=api_key, default_latency_ms=default_latency_ms, reply_prefix=reply_prefix
        )
        self._state = emulator_state(self.app)
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._port: int | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (only known once started)."""
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port`` with no trailing slash; add ``/v1`` for the OpenAI SDK."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- in the caller's loop -------------------------------------------------

    async def start(self) -> None:
        """Start serving in the running loop; returns once connections are accepted."""
        if self._task is not None:
            raise RuntimeError("the emulator is already running")
        sock = bind_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        self._state.reopen()
        self._loop = asyncio.get_running_loop()
        self._server = _EmbeddedServer(_config(self.app, self._log_level, embedded=True))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = self._loop.time() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if self._task.done() or self._loop.time() > deadline:
                await self.aclose()
                raise RuntimeError("the emulator failed to start")
            await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        """Stop serving: wake waiting answers, exit gracefully, then forcibly if need be."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._state.close()
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=STOP_STAGE_SECONDS)
        if not done:
            server.force_exit = True
            done, _ = await asyncio.wait({task}, timeout=STOP_STAGE_SECONDS)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self._server = self._task = None
        self._port = None

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

    # -- in a thread of its own ----------------------------------------------

    def start_in_thread(self) -> Self:
        """Serve from a daemon thread with its own event loop; returns once ready."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop_factory = _config(self.app, self._log_level, embedded=True).get_loop_factory()

        async def main() -> None:
            await self.start()  # a failure reaches run(), which reports it before `ready`
            task = self._task
            ready.set()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    runner.run(main())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="llm-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS) or failure:
            self.stop()
            cause = failure[0] if failure else None
            raise RuntimeError("the emulator failed to start") from cause
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread`; never waits for long."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just closed
                asyncio.run_coroutine_threadsafe(self.aclose(), loop)
        thread.join(3 * STOP_STAGE_SECONDS + 1)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_foreground(
    *,
    host: str = "127.0.0.1",
    port: int = 9100,
    api_key: str | None = None,
    latency_ms: int = 0,
    log_level: str = "warning",
) -> int:
    """Serve until SIGINT/SIGTERM, printing one ``emulator listening on URL`` line when ready.

    The line is the contract with a parent process (a CI script, a gateway
    demo): it appears only once connections are accepted. A signal stops the
    server gracefully and the exit code is then 0, so ``kill; wait`` succeeds.
    """
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        print(f"emulator: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    app = create_emulator_app(api_key=api_key, default_latency_ms=latency_ms)
    config = _config(app, log_level, embedded=False)
    server = _EmbeddedServer(config)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host

    def request_exit(*_: object) -> None:
        server.should_exit = True

    async def main() -> None:
        # Our own handlers rather than uvicorn's: uvicorn re-raises the signal after
        # a graceful stop, so `kill` would end the process with 143 instead of 0.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, request_exit)
            except NotImplementedError:  # Windows event loops
                signal.signal(sig, request_exit)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await _poll(lambda: server.started or task.done(), 0.005)
        if server.started:
            print(f"emulator listening on http://{shown_host}:{bound_port}", flush=True)
        # uvicorn waits for in-flight answers on exit; wake them (hang, slow streams) at once.
        await _poll(lambda: server.should_exit or task.done(), 0.05)
        emulator_state(app).close()
        await task

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())
    return 0
