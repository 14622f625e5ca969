"""What this process sees of each model's load: calls in flight and a latency average.

The load-aware strategies (least latency, least connections) read it; the
``Route`` stage writes it, calling :meth:`Load.started` (or
:meth:`Load.try_start`) before an attempt and :meth:`Load.finished` after it.
It is deliberately per process and never shared through the state store: it
changes on every call, and a replica balancing on its own view of the
upstreams is what nginx and Envoy do too. Each replica converges on the same
picture of which model is fast, and in-flight counts are only meaningful
where the connections are.

Nothing here awaits, so a check followed by a count (:meth:`Load.try_start`)
is atomic on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_ALPHA", "Load"]

DEFAULT_ALPHA = 0.3
"""The weight of the newest latency in the average. At 0.3 the last five calls carry
about 83% of it: quick to notice a model slowing down or recovering, yet one odd call
moves it by less than a third."""


@dataclass(slots=True)
class _Member:
    in_flight: int = 0
    ewma_ms: float | None = None
    last_tried: float | None = None


class Load:
    """Per-model in-flight counts and latency EWMAs, for one process.

    ``clock`` gives seconds (monotonic by default); the strategies read it
    through :attr:`clock` so that a test moves one clock for both.
    """

    def __init__(
        self, *, alpha: float = DEFAULT_ALPHA, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = alpha
        self.clock = clock
        self._members: dict[str, _Member] = {}

    def _member(self, name: str) -> _Member:
        member = self._members.get(name)
        if member is None:
            member = self._members[name] = _Member()
        return member

    def started(self, name: str) -> None:
        """An attempt on ``name`` begins: one more in flight, and it was tried now."""
        member = self._member(name)
        member.in_flight += 1
        member.last_tried = self.clock()

    def try_start(self, name: str, limit: int | None) -> bool:
        """:meth:`started`, only if fewer than ``limit`` calls are in flight (None: no limit).

        The check and the count happen together, so concurrent requests can never
        take a model past its ``max_concurrent`` between looking and starting.
        """
        if limit is not None and self.in_flight(name) >= limit:
            return False
        self.started(name)
        return True

    def cancelled(self, name: str) -> None:
        """Undo the count of :meth:`started` for an attempt that never began (its circuit
        refused it after the slot was taken). Its moment stays tried: it was looked at."""
        member = self._member(name)
        member.in_flight = max(0, member.in_flight - 1)

    def finished(self, name: str, latency_ms: float, ok: bool) -> None:
        """An attempt on ``name`` ended after ``latency_ms``, successfully or not.

        A success feeds its latency to the average. A failure may only make the
        model look slower, never faster: a timeout counts at its full length,
        but a connection refused in 2 ms must not make a broken model the
        "fastest" one (taking it out of rotation is the breaker's job). A
        failure before any success leaves the model unmeasured.
        """
        member = self._member(name)
        member.in_flight = max(0, member.in_flight - 1)  # a stray finish never goes negative
        previous = member.ewma_ms
        if previous is None:
            if ok:
                member.ewma_ms = float(latency_ms)
            return
        sample = latency_ms if ok else max(latency_ms, previous)
        member.ewma_ms = self.alpha * sample + (1 - self.alpha) * previous

    def in_flight(self, name: str) -> int:
        """Attempts on ``name`` begun and not yet finished, in this process."""
        member = self._members.get(name)
        return 0 if member is None else member.in_flight

    def ewma_ms(self, name: str) -> float | None:
        """The latency average in milliseconds; None until a call has succeeded."""
        member = self._members.get(name)
        return None if member is None else member.ewma_ms

    def last_tried(self, name: str) -> float | None:
        """When (on :attr:`clock`) an attempt on ``name`` last began; None if never."""
        member = self._members.get(name)
        return None if member is None else member.last_tried
