"""Faults for the durability tests: a database that goes away, a disk that fills, load.

:class:`TcpProxy` stands between the gateway and PostgreSQL; ``cut()`` is the
database stopping as a client sees it (open connections reset, new ones
refused) and ``restore()`` its return on the same port. :class:`Load` sends
JSON and streamed chat requests from a few threads and notes, per request id,
what its caller got: the status and body of a JSON answer, and for a stream
whether any content byte, and its end, arrived.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.conftest import Gateway, directive


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``, until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)  # as a database that stops closes its connections

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            _close(sock)


def _close(sock: socket.socket) -> None:
    """Shut down first: a plain close waits for the other thread's ``recv`` on it to return,
    and so would send nothing."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass
class Outcomes:
    """What the callers got, by request id."""

    json: dict[str, int] = field(default_factory=dict)  # status of a whole JSON answer
    streamed: dict[str, bool] = field(default_factory=dict)  # a content byte came; True: the end
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> set[str]:
        """Requests whose caller got an answer, or any byte of one."""
        with self.lock:
            return {r for r, s in self.json.items() if s == 200} | set(self.streamed)


class Load:
    """``threads`` callers, alternating JSON and streamed requests (or JSON only), until
    stopped."""

    STREAM = directive("word " * 40, chunk_delay_ms=15)  # ~40 chunks: a kill lands in one

    def __init__(self, gateway: Gateway, threads: int = 6, *, streams: bool = True) -> None:
        self.gateway = gateway
        self.streams = streams
        self.outcomes = Outcomes()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def count(self) -> int:
        with self.outcomes.lock:
            return len(self.outcomes.json) + len(self.outcomes.streamed)

    def _run(self, index: int) -> None:
        headers = {"Authorization": f"Bearer {self.gateway.token(f'load-{index}')}"}
        with httpx.Client(base_url=self.gateway.base_url, headers=headers, timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    if n % 2 or not self.streams:
                        self._json(client)
                    else:
                        self._stream(client)
                except (httpx.TransportError, httpx.StreamError):
                    time.sleep(0.05)  # the gateway is gone, or going: nothing was answered

    def _json(self, client: httpx.Client) -> None:
        body = {"model": "gpt-emu", "messages": [{"role": "user", "content": "hello"}]}
        response = client.post("/v1/chat/completions", json=body)
        request_id = response.headers.get("x-request-id")
        if request_id:
            with self.outcomes.lock:
                self.outcomes.json[request_id] = response.status_code

    def _stream(self, client: httpx.Client) -> None:
        body = {
            "model": "gpt-emu", "stream": True,
            "messages": [{"role": "user", "content": self.STREAM}],
        }  # fmt: skip
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            request_id = response.headers.get("x-request-id")
            if response.status_code != 200 or not request_id:
                response.read()
                if request_id:
                    with self.outcomes.lock:
                        self.outcomes.json[request_id] = response.status_code
                return
            for chunk in response.iter_bytes():
                if not chunk:
                    continue
                done = b"[DONE]" in chunk
                with self.outcomes.lock:
                    self.outcomes.streamed[request_id] = done
                if done:
                    return


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its filesystem is full; the file, to free it later."""
    filler = directory / "filler"
    with filler.open("wb") as handle:
        block = b"\0" * (1 << 16)
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
    return filler


def mount_tmpfs(directory: Path, size_mb: int) -> bool:
    """A small tmpfs at ``directory``; False when this user may not mount one."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def unmount(directory: Path) -> None:
    subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)
