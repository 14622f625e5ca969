"""Each attempt's start and end: what the strategies, the breaker and the 503s learn.

The Route stage takes a :class:`Slot` with :meth:`Tracker.try_start` before
an attempt (no slot: the model is at its ``max_concurrent``) and finishes it
when the attempt is over: at once for an answer or a failure, at the stream's
end for a stream (its model is busy until then). A slot is finished exactly
once, whichever path gets there first; finishing it feeds the process's
:class:`~llm_gateway.routing.load.Load` (in flight, latency) and the circuit
breaker (shared across replicas through the state store).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from llm_gateway.routing.load import Load

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """The circuit breaker's side: one outcome per attempt."""

    async def record(self, name: str, ok: bool) -> object: ...


class Tracker:
    def __init__(self, load: Load | None = None, breaker: Recorder | None = None) -> None:
        self.load = load or Load()
        self.breaker = breaker
        self._freed = asyncio.Event()
        self._late: set[asyncio.Task[None]] = set()  # outcomes of closed streams, being recorded

    def in_flight(self, name: str) -> int:
        return self.load.in_flight(name)

    def try_start(self, name: str, limit: int) -> Slot | None:
        """A slot on ``name``, or None when ``limit`` attempts are already in flight there."""
        return Slot(self, name) if self.load.try_start(name, limit) else None

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

    def _finished(self, name: str, ok: bool, latency_ms: float) -> None:
        self.load.finished(name, latency_ms, ok)
        self._freed.set()

    async def _record(self, name: str, ok: bool) -> None:
        if self.breaker is not None:
            await self.breaker.record(name, ok)

    def _record_later(self, name: str, ok: bool) -> None:
        if self.breaker is None:
            return
        task = asyncio.get_running_loop().create_task(self._record(name, ok))
        self._late.add(task)
        task.add_done_callback(self._late.discard)


class Slot:
    """One attempt in flight on one model (one endpoint: a deployment's ``key``)."""

    __slots__ = ("_open", "name", "tracker")

    def __init__(self, tracker: Tracker, name: str) -> None:
        self.tracker = tracker
        self.name = name
        self._open = True

    async def finish(self, ok: bool, latency_ms: float) -> None:
        """The attempt is over: ``ok`` unless it failed in a way the model is blamed for."""
        if self._close(ok, latency_ms) and self.tracker.breaker is not None:
            await self.tracker._record(self.name, ok)

    def finish_soon(self, ok: bool, latency_ms: float) -> None:
        """:meth:`finish` from code that cannot wait (a stream's close callback)."""
        if self._close(ok, latency_ms):
            self.tracker._record_later(self.name, ok)

    def _close(self, ok: bool, latency_ms: float) -> bool:
        if not self._open:
            return False
        self._open = False
        self.tracker._finished(self.name, ok, latency_ms)
        return True
