"""Processes the benchmark starts: pinned to a core, measured from /proc, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass(frozen=True)
class Ready:
    """How to tell a started service is ready: ``path`` answers below 500 within the time."""

    url: str
    path: str
    timeout_s: float = 60
    headers: dict[str, str] | None = None


def start(
    name: str,
    argv: Sequence[str],
    ready: Ready,
    *,
    cpus: str | None,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Service:
    """Start ``argv`` pinned to ``cpus`` in its own process group, and wait until it is ready."""
    url, timeout_s = ready.url, ready.timeout_s
    log = log_dir / f"{name}.log"
    command = ["taskset", "-c", cpus, *argv] if cpus else list(argv)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    service = Service(name, process, url, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start-up; see {log}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + ready.path, timeout=1, headers=ready.headers).status_code < 500:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{name} did not become ready in {timeout_s}s; see {log}")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process tree in MB (``VmHWM`` for the peak)."""
    total_kb = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024
