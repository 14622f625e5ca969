"""Each attempt's start and end: what least-connections, least-latency and the breaker learn.

The Route stage calls :meth:`Tracker.started` before an attempt and the
returned :class:`Slot` when the attempt is over: at once for an answer or a
failure, at the stream's end for a stream (its model is busy until then). A
slot is finished exactly once, whichever path gets there first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Protocol

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """The circuit breaker's side: one outcome per attempt."""

    async def record(self, name: str, ok: bool) -> object: ...


class Tracker:
    def __init__(self, breaker: Recorder | None = None) -> None:
        self.breaker = breaker
        self._in_flight: dict[str, int] = defaultdict(int)
        self._freed = asyncio.Event()
        self._late: set[asyncio.Task[None]] = set()  # outcomes of closed streams, being recorded

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def started(self, name: str) -> Slot:
        self._in_flight[name] += 1
        return Slot(self, name)

    async def wait_for_slot(self, timeout_s: float) -> None:
        """Until any attempt ends, or ``timeout_s``."""
        if timeout_s <= 0:
            return
        self._freed.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._freed.wait()
        except TimeoutError:
            pass

    def _release(self, name: str) -> None:
        self._in_flight[name] -= 1
        self._freed.set()

    async def _record(self, name: str, ok: bool) -> None:
        if self.breaker is not None:
            await self.breaker.record(name, ok)

    def _record_later(self, name: str, ok: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._record(name, ok))
        self._late.add(task)
        task.add_done_callback(self._late.discard)


class Slot:
    """One attempt in flight on one model."""

    __slots__ = ("_open", "name", "tracker")

    def __init__(self, tracker: Tracker, name: str) -> None:
        self.tracker = tracker
        self.name = name
        self._open = True

    async def finish(self, ok: bool, latency_ms: float) -> None:
        """The attempt is over: ``ok`` unless it failed in a way the model is blamed for."""
        if self._close() and self.tracker.breaker is not None:
            await self.tracker._record(self.name, ok)

    def finish_soon(self, ok: bool, latency_ms: float) -> None:
        """:meth:`finish` from code that cannot wait (a stream's close callback)."""
        if self._close():
            self.tracker._record_later(self.name, ok)

    def _close(self) -> bool:
        if not self._open:
            return False
        self._open = False
        self.tracker._release(self.name)
        return True
