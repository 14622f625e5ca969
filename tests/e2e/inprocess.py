"""The gateway served from a thread of the test process, as ``llm-gateway serve`` serves it.

Starting ``llm-gateway serve`` as a subprocess costs about a second (the
interpreter, the imports, the policy engine); most end-to-end tests only need
the gateway's HTTP behaviour. :class:`InProcessServer` builds the app with
:func:`llm_gateway.app.create_app` from settings read out of the same
environment mapping a subprocess would get, and serves it with the same
server: :class:`llm_gateway.server.ServerConfig` (uvicorn with the gateway's
:class:`~llm_gateway.server.GuardedHttpProtocol` and HTTP limits), uvloop,
the lifespan, on a real socket. So the SDKs, streams, aborted connections and
slow clients behave as they do against the process.

What differs, and stays covered by the process tests:

* signals: the server runs outside the main thread, so it installs no signal
  handlers (SIGTERM, SIGHUP reloads);
* the process itself (its exit status, ``--workers``, the ``serve`` command's
  own start-up code; the start-up checks are the same :func:`cli.checked_config`);
* logging is configured per process: instead of ``configure_logging`` writing
  to the process's stderr, a handler of the gateway's own writes, in the
  gateway's format, every record emitted from the gateway's threads (its
  event loop, the tasks and ``to_thread`` calls started from it, and its
  worker pools) to ``log_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

import uvicorn

from llm_gateway import cli
from llm_gateway.app import Gateway, create_app
from llm_gateway.observability.logging import JsonFormatter, TextFormatter
from llm_gateway.server import HttpLimits, ServerConfig
from llm_gateway.settings import SettingsError, load_settings

START_TIMEOUT_S = 30.0
#: Threads the gateway starts without a copy of the context (``run_in_executor``
#: on pools of its own); their records belong to whichever gateway is running.
GATEWAY_POOL_PREFIXES = ("audit-sqlite", "ner-pipe")

_current: contextvars.ContextVar[InProcessServer | None] = contextvars.ContextVar(
    "e2e_gateway", default=None
)
_live: set[InProcessServer] = set()
_live_lock = threading.Lock()


class StartupError(RuntimeError):
    """The gateway stopped at start-up (``serve`` would have exited)."""


class _Server(uvicorn.Server):
    """uvicorn without signal handlers: pytest's process owns them. Its main loop
    ticks every 0.1 s, as uvicorn's does, and a stop wakes it at once."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def request_exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wake.set)


class _GatewayLog(logging.Handler):
    """Writes the records of one gateway to its log file, one line each, as it would."""

    def __init__(self, server: InProcessServer, path: Path, fmt: str, level: str) -> None:
        super().__init__(level.upper())
        self.server = server
        self.stream = path.open("a", encoding="utf-8", errors="replace")
        self.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())

    def filter(self, record: logging.LogRecord) -> bool:
        owner = _current.get()
        if owner is not None:
            return owner is self.server
        return (record.threadName or "").startswith(GATEWAY_POOL_PREFIXES) and self.server.live

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line + "\n")
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        super().close()


# The loggers ``configure_logging`` opens up; raised while any gateway runs here.
_LOGGERS = ("llm_gateway", "uvicorn", "uvicorn.error")
_saved_levels: dict[str, int] = {}


def _open_loggers(level: str) -> None:
    if not _saved_levels:
        _saved_levels.update({name: logging.getLogger(name).level for name in _LOGGERS})
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        wanted = logging.getLevelName(level.upper())
        if logger.level == logging.NOTSET or logger.level > wanted:
            logger.setLevel(wanted)


def _restore_loggers() -> None:
    for name, level in _saved_levels.items():
        logging.getLogger(name).setLevel(level)
    _saved_levels.clear()


class InProcessServer:
    """One gateway, configured from ``env`` (the mapping a subprocess would get)."""

    def __init__(self, env: Mapping[str, str], cwd: Path, log_path: Path) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.live = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._handler: _GatewayLog | None = None
        self.app: Gateway | None = None  # for tests that reach into the running gateway

    def start(self) -> int:
        """Start serving; returns the port. Raises :class:`StartupError` as ``serve`` exits."""
        try:
            settings = load_settings(self.env, env_file=self.cwd / ".env")
        except SettingsError as exc:
            self._fail(f"error: {exc}")
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            config = cli.checked_config(settings)  # what `serve` checks before it listens
        if config is None:
            self._fail(stderr.getvalue())
        app = self.app = create_app(settings, config)
        server_config = ServerConfig(
            app,
            limits=HttpLimits.of(settings.http),
            host=settings.http.host,
            port=0,
            loop="uvloop",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(settings.http.shutdown_grace_s),
            timeout_keep_alive=settings.http.keep_alive_s,
        )
        log = settings.log
        self._handler = _GatewayLog(self, self.log_path, log.format, log.level)
        with _live_lock:
            _open_loggers(log.level)
            _live.add(self)
        logging.getLogger().addHandler(self._handler)
        self.live = True
        server_config.load()
        sock = server_config.bind_socket()
        port = int(sock.getsockname()[1])
        self._server = server = _Server(server_config)
        done = threading.Event()

        def run() -> None:
            _current.set(self)
            loop_factory = server_config.get_loop_factory()
            try:
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    runner.get_loop().set_default_executor(
                        ThreadPoolExecutor(thread_name_prefix=f"gateway-{port}")
                    )
                    runner.run(server.serve(sockets=[sock]))
            except BaseException:
                logging.getLogger("uvicorn.error").exception("the server failed")
            finally:
                sock.close()
                # What the lifespan built is freed here (by its last reference): the
                # Rego engine may only be dropped on the thread that made it.
                vars(app.api.state).get("_state", {}).pop("gateway", None)
                done.set()

        self._thread = threading.Thread(target=run, name=f"gateway-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if done.wait(0.005):
                self.stop()
                raise StartupError(f"the gateway exited at start-up:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(f"the gateway did not become ready:\n{self.logs()}")
        return port

    def _fail(self, message: str) -> NoReturn:
        with self.log_path.open("a") as log:
            log.write(message if message.endswith("\n") else message + "\n")
        raise StartupError(f"the gateway exited at start-up:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop as SIGTERM would: gracefully, then forcibly after ``grace_s``."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.request_exit()
            thread.join(grace_s)
            if thread.is_alive():
                server.force_exit = True
                thread.join(grace_s)
        self.live = False
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        with _live_lock:
            _live.discard(self)
            if not _live:
                _restore_loggers()
