"""Background health checks: which models answer their cheapest honest call right now.

Traffic finds a broken model too, but only by failing someone's request;
health checks find it first, and keep probing a model that gets no traffic
(a fallback nobody has needed today) so that it is known good when it is
needed. Each model with checks enabled is probed every ``interval_s``;
``failure_threshold`` consecutive failures mark it down, a single success
marks it up again. A model starts up: it is innocent until its probes fail.

The probe is injected, ``probe(name)``, raising on failure: this module knows
nothing about providers (the provider adapters say what is cheapest to send).
Each probe is bounded by its check's ``timeout_s``; a probe that takes longer
has failed with the code ``timeout``.

:meth:`HealthChecker.check_once` is one sweep: every model that is due is
probed, concurrently, and the state updated. The background task
(:meth:`~HealthChecker.start`, :meth:`~HealthChecker.stop`, with the app's
lifespan) is only that sweep on a timer, so tests drive ``check_once`` with
the time they choose and never sleep. Health is per process: each replica
checks for itself, which is what its own connections to the upstream see.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

__all__ = ["Check", "HealthChecker", "HealthTransition", "ModelHealth", "Probe", "error_code"]

log = logging.getLogger(__name__)

Probe = Callable[[str], Awaitable[None]]
"""Checks one model by name; returns when it is healthy, raises when it is not."""


@dataclass(frozen=True, slots=True)
class Check:
    """One model's health check (the routing file's ``health_check``, plus a timeout)."""

    interval_s: float = 30.0
    failure_threshold: int = 3
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name, value in (("interval_s", self.interval_s), ("timeout_s", self.timeout_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """What the checks know of one model. ``last_error`` is kept after a recovery, so the
    health endpoint can say why a model flapped; ``last_checked`` is None until the first
    probe ends."""

    up: bool = True
    consecutive_failures: int = 0
    last_error: str | None = None
    last_checked: float | None = None


@dataclass(frozen=True, slots=True)
class HealthTransition:
    """A model went down (``up`` False) or came back, at ``at`` on the checker's clock."""

    name: str
    up: bool
    at: float
    error: str | None  # the failure that took it down; None when it came back


def error_code(exc: BaseException) -> str:
    """A short, safe name for a probe's failure: ``timeout``, the error's own ``code``
    (a gateway error's, such as ``upstream_unreachable``), else its class name. Never
    the message, which may quote a URL or an upstream body."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    return type(exc).__name__


class HealthChecker:
    """Probes the models in ``checks`` (those with health checks enabled) on their intervals.

    ``clock`` gives monotonic seconds; ``on_transition`` is called with each
    change of a model's state (it must not raise), after it is logged.
    """

    def __init__(
        self,
        checks: Mapping[str, Check],
        probe: Probe,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[HealthTransition], None] | None = None,
    ) -> None:
        self.checks = dict(checks)
        self.probe = probe
        self.clock = clock
        self.on_transition = on_transition
        self._health = {name: ModelHealth() for name in self.checks}
        self._due = dict.fromkeys(self.checks, -math.inf)  # every model is due at once
        self._task: asyncio.Task[None] | None = None

    # Reading

    def is_up(self, name: str) -> bool:
        """False only for a model whose checks have marked it down (unchecked models are up)."""
        health = self._health.get(name)
        return health is None or health.up

    def health(self, name: str) -> ModelHealth | None:
        """The model's state; None for a model without health checks."""
        return self._health.get(name)

    def snapshot(self) -> dict[str, ModelHealth]:
        """Every checked model's state, for the health endpoint and ``/ready``."""
        return dict(self._health)

    # Checking

    async def check_once(self, now: float | None = None) -> list[HealthTransition]:
        """Probe every model due at ``now`` (default: the clock), concurrently; the changes.

        Each probed model is next due one interval after ``now``.
        """
        now = self.clock() if now is None else now
        due = [name for name, at in self._due.items() if at <= now]
        failures = await asyncio.gather(*(self._probe(name) for name in due))
        changes: list[HealthTransition] = []
        for name, failure in zip(due, failures, strict=True):
            self._due[name] = now + self.checks[name].interval_s
            change = self._update(name, failure, now)
            if change is not None:
                changes.append(change)
        return changes

    async def _probe(self, name: str) -> str | None:
        """One probe, bounded by its timeout: None if healthy, else the error's code."""
        try:
            async with asyncio.timeout(self.checks[name].timeout_s):
                await self.probe(name)
        except Exception as exc:  # noqa: BLE001 (an injected probe: any failure means unhealthy)
            return error_code(exc)
        return None

    def _update(self, name: str, failure: str | None, now: float) -> HealthTransition | None:
        old = self._health[name]
        if failure is None:
            new = ModelHealth(True, 0, old.last_error, now)
        else:
            failures = old.consecutive_failures + 1
            up = old.up and failures < self.checks[name].failure_threshold
            new = ModelHealth(up, failures, failure, now)
        self._health[name] = new
        if new.up == old.up:
            return None
        change = HealthTransition(name, new.up, now, None if new.up else failure)
        if new.up:
            log.info("health check: model %s is up again", name)
        else:
            log.warning(
                "health check: model %s is down after %d failed checks (last error: %s)",
                name,
                new.consecutive_failures,
                failure,
            )
        if self.on_transition is not None:
            self.on_transition(change)
        return change

    # The background task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start probing in the background (from the app's lifespan, on its event loop).

        The first sweep runs at once; with no models to check there is no task.
        """
        if self.running:
            raise RuntimeError("the health checker is already running")
        if not self.checks:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="health-checks")
        self._task.add_done_callback(_report_death)

    async def stop(self) -> None:
        """Cancel the background task and wait for it to end; harmless when not running."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])  # never re-raises the task's cancellation into ours

    async def _run(self) -> None:
        while True:
            await self.check_once()
            pause = min(self._due.values()) - self.clock()
            await asyncio.sleep(max(pause, 0.0))


def _report_death(task: asyncio.Task[None]) -> None:
    """A loop that dies leaves every model's state frozen: say so loudly."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("health checks stopped: every model's state is frozen", exc_info=exc)
