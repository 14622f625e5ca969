"""The alerts service: events in, webhooks out, and never a request kept waiting.

:meth:`Alerts.alert` is synchronous and does no I/O: it de-duplicates (one
alert per kind and key within ``dedup_seconds``; the ones left out are counted
and reported with the next), applies each destination's rate limit
(``max_per_minute``, a token bucket: what is over is dropped and counted) and
appends the alert to the queue of every destination subscribed to its kind.
Each destination has its own bounded queue and its own sender task, so one
slow or dead webhook delays no other; a full queue drops its oldest alert.

A sender posts one alert at a time through the gateway's transport (a pool of
its own, ``kind="alerts"``), each attempt bounded by ``timeout_seconds``, and
tries again, up to ``max_attempts`` in all, after a connection error, a
timeout, a 429 or a 5xx: after ``Retry-After`` when the answer has one (at
most a minute), else after 1, 2, 4... seconds. Any other answer is final.

With a shared state store (Redis, for several replicas), a sender first
claims the alert for its destination in the store (``set_if_absent`` on the
destination, kind, key and the alert's window of ``dedup_seconds`` on the wall
clock, which replicas share): what several replicas see in one window (a
policy engine down, a stale confirmation) is sent once. A store
that fails or is slow to answer (``store_timeout_s``) does not stop the alert:
better twice than never.

Periodic checks (the stale confirmations, a gauge such as the audit spool's
size: :meth:`Alerts.watch`) run every ``check_seconds`` on a task of their own.

Logs name a destination by its key in ``alerts.yaml``: never its URL or its
routing key, which are credentials. Trouble is logged at most once per 30
seconds per destination, with what was dropped meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from llm_gateway.errors import UpstreamError
from llm_gateway.observability.alerts import formats
from llm_gateway.observability.alerts.alert import SEVERITY, Alert, Detail
from llm_gateway.observability.alerts.settings import AlertSettings, Destination
from llm_gateway.state import Store, StoreError
from llm_gateway.transport import Transport, UpstreamRequest, UpstreamResponse

__all__ = ["Alerts", "Check", "DestinationStats"]

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

MAX_RETRY_AFTER_S = 60.0
BACKOFF_S = 1.0
STOP_GRACE_S = 2.0  # how long stopping waits for the queues to empty
_QUIET_S = 30.0
_MAX_REMEMBERED = 10_000  # kinds and keys remembered for de-duplication


@dataclass(slots=True)
class DestinationStats:
    queued: int = 0
    sent: int = 0
    failed: int = 0  # given up on: refused, or out of attempts
    retried: int = 0
    dropped: int = 0  # the queue was full: the oldest went
    rate_limited: int = 0
    claimed_elsewhere: int = 0  # another replica sent it


@dataclass(slots=True)
class _Destination:
    name: str
    config: Destination
    queue: deque[Alert]
    tokens: float
    refilled_at: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stats: DestinationStats = field(default_factory=DestinationStats)
    task: asyncio.Task[None] | None = None
    quiet_until: float = 0.0
    unlogged: int = 0  # dropped or rate-limited since the last warning

    def take(self, now: float) -> bool:
        """A token from the bucket: ``max_per_minute`` a minute, as many at once."""
        rate = self.config.max_per_minute
        self.tokens = min(rate, self.tokens + (now - self.refilled_at) * rate / 60)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(slots=True)
class _Seen:
    until: float  # monotonic
    repeats: int = 0


class Alerts:
    """Every configured destination's queue and sender (see the module's doc).

    Call :meth:`alert` from the event loop's thread (recorders, the breaker's
    listener and the checks all run there); :meth:`start` in the app's lifespan.
    """

    def __init__(
        self,
        settings: AlertSettings,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        shared: Store | None = None,
        store_timeout_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.shared = shared  # None: this process de-duplicates alone
        self.store_timeout_s = store_timeout_s
        self._store_quiet_until = 0.0
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.source = settings.source or socket.gethostname()
        now = clock()
        self.destinations = {
            d.name: _Destination(
                d.name, d, deque(maxlen=settings.queue_size), d.max_per_minute, now
            )
            for d in settings.destinations
        }
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        self.deduplicated = 0
        self._checks: list[Check] = []
        self._checker: asyncio.Task[None] | None = None
        self._started = self._closing = False

    def wants(self, kind: str) -> bool:
        """Does any destination take alerts of ``kind``? (Is a check for it worth running?)"""
        return any(kind in d.config.events for d in self.destinations.values())

    def alert(
        self, kind: str, key: str, summary: str, details: Mapping[str, Detail] | None = None
    ) -> bool:
        """Queue an alert for every destination of ``kind``; False when it was a repeat within
        the window (or no destination takes it). Never waits, never raises for a webhook."""
        targets = [d for d in self.destinations.values() if kind in d.config.events]
        if not targets:
            return False
        now = self.clock()
        repeats = self._repeats((kind, key), now)
        if repeats is None:
            return False
        severity = SEVERITY.get(kind, "error")
        alert = Alert(kind, key, summary, dict(details or {}), self.wall(), severity, repeats)
        for d in targets:
            self._enqueue(d, alert, now)
        return True

    def watch(
        self, kind: str, key: str, read: Callable[[], tuple[float, float]], summary: str
    ) -> None:
        """Alert ``kind`` whenever ``read()`` returns a value at or over its threshold
        (``(value, threshold)``), read every ``check_seconds``: e.g. the audit spool's size
        against its cap, for ``audit_spool``."""

        async def check() -> None:
            value, threshold = read()
            if value >= threshold:
                self.alert(kind, key, summary, {"value": value, "threshold": threshold})

        self.add_check(check)

    def add_check(self, check: Check) -> None:
        """Run ``check`` every ``check_seconds`` (it calls :meth:`alert` when it must); one
        added after :meth:`start` joins the running round."""
        self._checks.append(check)
        if self._started and self._checker is None and not self._closing:
            self._checker = asyncio.get_running_loop().create_task(
                self._check_every(), name="alerts-checks"
            )

    async def run_checks(self) -> None:
        """Run every check once; one that fails is logged and the others still run."""
        for check in self._checks:
            try:
                await check()
            except Exception:  # a check is a boundary: the next round tries again
                log.warning("alerts: a periodic check failed", exc_info=True)

    def stats(self) -> dict[str, DestinationStats]:
        return {name: d.stats for name, d in self.destinations.items()}

    def start(self) -> None:
        """The senders and the checks, as tasks of the running loop (the app's lifespan)."""
        loop = asyncio.get_running_loop()
        self._started = True
        for d in self.destinations.values():
            d.task = loop.create_task(self._send_all(d), name=f"alerts-{d.name}")
        if self._checks:
            self._checker = loop.create_task(self._check_every(), name="alerts-checks")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Send what is queued for up to ``grace_s``, then give up on the rest."""
        self._closing = True
        if self._checker is not None:
            self._checker.cancel()
        tasks = [d.task for d in self.destinations.values() if d.task is not None]
        for d in self.destinations.values():
            d.wake.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._checker is not None:
            await asyncio.wait([self._checker])
        left = sum(len(d.queue) for d in self.destinations.values())
        if left:
            log.warning("alerts: %d alerts were still queued at shutdown and were not sent", left)

    # --- queueing ------------------------------------------------------------------

    def _repeats(self, key: tuple[str, str], now: float) -> int | None:
        """None: a repeat within the window (counted); else how many were left out before."""
        seen = self._seen.get(key)
        if seen is not None and now < seen.until:
            seen.repeats += 1
            self.deduplicated += 1
            return None
        repeats = seen.repeats if seen is not None else 0
        self._seen.pop(key, None)
        while len(self._seen) >= _MAX_REMEMBERED:  # the oldest first: they expire first
            self._seen.popitem(last=False)
        if self.settings.dedup_s > 0:
            self._seen[key] = _Seen(now + self.settings.dedup_s)
        return repeats

    def _enqueue(self, d: _Destination, alert: Alert, now: float) -> None:
        if not d.take(now):
            d.stats.rate_limited += 1
            self._trouble(d, f"over its rate limit of {d.config.max_per_minute} a minute")
            return
        if len(d.queue) == d.queue.maxlen:
            d.stats.dropped += 1  # the deque drops its oldest as the new one goes in
            self._trouble(d, "its queue is full (the oldest alerts are dropped)")
        d.queue.append(alert)
        d.stats.queued += 1
        d.wake.set()

    def _trouble(self, d: _Destination, why: str) -> None:
        d.unlogged += 1
        moment = time.monotonic()
        if moment >= d.quiet_until:
            d.quiet_until = moment + _QUIET_S
            log.warning("alerts to %s: %d not sent: %s", d.name, d.unlogged, why)
            d.unlogged = 0

    # --- sending -------------------------------------------------------------------

    async def _send_all(self, d: _Destination) -> None:
        while True:
            if not d.queue:
                if self._closing:
                    return
                d.wake.clear()
                await d.wake.wait()
                continue
            alert = d.queue.popleft()
            try:
                if await self._claimed_elsewhere(d, alert):
                    d.stats.claimed_elsewhere += 1
                    continue
                await self._deliver(d, alert)
            except Exception:  # the sender's boundary: the next alert must still go
                d.stats.failed += 1
                log.warning("alerts to %s: a %s alert failed", d.name, alert.kind, exc_info=True)

    async def _claimed_elsewhere(self, d: _Destination, alert: Alert) -> bool:
        """Has another replica claimed this alert for ``d`` within the window? False when no
        store is shared, or it cannot say (then the alert goes: better twice than never)."""
        if self.shared is None or self.settings.dedup_s <= 0:
            return False
        window = self.settings.dedup_s
        key = f"{d.name}\x00{alert.kind}\x00{alert.key}\x00{math.floor(alert.at / window)}"
        try:
            async with asyncio.timeout(self.store_timeout_s):
                claimed = await self.shared.set_if_absent(key, b"1", ttl_s=2 * window)
        except (StoreError, TimeoutError) as exc:
            moment = time.monotonic()
            if moment >= self._store_quiet_until:
                self._store_quiet_until = moment + _QUIET_S
                log.warning(
                    "alerts: the state store failed (%s): alerts go out unclaimed, and replicas "
                    "may repeat them", str(exc) or type(exc).__name__,
                )  # fmt: skip
            return False
        return not claimed

    async def _deliver(self, d: _Destination, alert: Alert) -> None:
        request = self._request(d, alert)
        attempts = d.config.max_attempts
        for attempt in range(1, attempts + 1):
            status, wait, problem = await self._attempt(d, request)
            if status is not None and 200 <= status < 300:
                d.stats.sent += 1
                return
            if wait is None:  # final: the webhook refused it
                d.stats.failed += 1
                log.warning("alerts to %s: a %s alert was refused: %s", d.name, alert.kind, problem)
                return
            if attempt == attempts:
                break
            d.stats.retried += 1
            await self.sleep(wait if wait > 0 else BACKOFF_S * 2 ** (attempt - 1))
        d.stats.failed += 1
        log.warning(
            "alerts to %s: a %s alert was not sent after %d attempts: %s",
            d.name, alert.kind, attempts, problem,
        )  # fmt: skip

    async def _attempt(
        self, d: _Destination, request: UpstreamRequest
    ) -> tuple[int | None, float | None, str]:
        """One POST: its status, how long to wait before another (0: the backoff's; None:
        do not try again) and what went wrong, in words that name no URL."""
        response: UpstreamResponse | None = None
        try:
            async with asyncio.timeout(d.config.timeout_s):
                response = await self.transport.send(request)
                await response.read()
        except TimeoutError:
            return None, 0, f"no answer within {d.config.timeout_s:g} s"
        except UpstreamError as exc:
            return None, 0, str(exc).replace("the provider", "the webhook")
        finally:
            if response is not None:
                response.close()
        status = response.status
        if status == 429 or status >= 500:
            wait = retry_after(response.headers.get("Retry-After"), self.wall())
            return status, wait, f"HTTP {status}"
        return status, None, f"HTTP {status}"

    def _request(self, d: _Destination, alert: Alert) -> UpstreamRequest:
        config = d.config
        payload: dict[str, Any]
        if config.format == "pagerduty":
            assert config.routing_key is not None  # the config's validator sees to it
            payload = formats.pagerduty(alert, self.source, config.routing_key, self.settings.group)
        else:
            payload = formats.slack(alert, self.source)
        return UpstreamRequest(
            url=config.url,
            headers={"Content-Type": "application/json", "User-Agent": "llm-gateway-alerts"},
            body=orjson.dumps(payload),
            pool=d.name,
            max_connections=2,
            read_timeout_s=config.timeout_s,
            kind="alerts",
            follow_redirects=False,
        )

    async def _check_every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_s)
            await self.run_checks()


def retry_after(value: str | None, now: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), at most
    :data:`MAX_RETRY_AFTER_S`; 0 when absent or unreadable (the backoff decides)."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, MAX_RETRY_AFTER_S)
