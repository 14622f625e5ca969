"""Group commit for audit rows, with an on-disk spool for when the database cannot take them.

Requests append their row; one writer task takes everything pending and
inserts it in a single transaction, and whatever arrives meanwhile forms the
next batch. Under load batches grow and a commit's cost is shared; at low load
a row is committed as soon as it arrives.

Two modes (``AUDIT_MODE``):

- ``strict`` (the default): a request's answer completes only once its row is
  durable: committed, or written and fsynced to the spool.
- ``fast``: a request queues its row and goes on; rows are committed in the same
  batches a moment later. A hard crash loses the rows still queued (at most
  ``queue_max``, in practice the last few milliseconds' worth); the spool is
  written without fsync, so a crash of the process loses nothing of it, one of
  the machine may.

When a commit fails, or takes longer than ``spool_after_s``, the batch goes to
the spool (:mod:`llm_gateway.audit.spool`) and the requests complete; later
batches go straight to the spool while a replayer tries the database with
backoff and, once it takes the spool back, batches go to the database again.
Replay skips request ids already stored, so a commit that landed after it timed
out is not stored twice. Memory stays bounded: at most ``queue_max`` rows wait in
memory, the rest of a backlog is on disk, and the spool has its own size limit.
When neither the database nor the spool can take a row, requests fail with
``audit_unavailable`` (no answer without a record), and a refused request's row
still queued says so: a row records what the caller got.

Without a spool (``AUDIT_SPOOL_MAX_MB=0``) a failed batch is retried with
backoff and requests wait for it up to ``wait_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from llm_gateway.audit.sinks import AuditSink, RejectedRows, Row
from llm_gateway.audit.spool import Spool, SpoolFull
from llm_gateway.errors import GatewayError
from llm_gateway.settings.storage import AuditMode
from llm_gateway.storage.failures import cause

log = logging.getLogger(__name__)

Item = tuple[Row, "asyncio.Future[None]"]
#: How often a healthy writer looks for a dead process's spool to adopt.
ADOPT_EVERY_S = 30.0
#: The share of the spool's limit past which the writer warns (and the alerts fire).
SPOOL_WARN_AT = 0.8
SPOOL_FILLING = (
    "the audit spool is past 80% of AUDIT_SPOOL_MAX_MB: the database has not taken rows for "
    "a while, and at the limit requests are refused with audit_unavailable"
)


class AuditUnavailable(GatewayError):
    status = 503
    code = "audit_unavailable"


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """What readiness and the metrics say of the audit trail."""

    mode: AuditMode
    failing: str | None  # why no row can be recorded now (not ready); None: rows are recorded
    spooling: str | None  # why rows go to the spool instead of the database
    backlog: int  # rows queued in memory or being committed
    spool_bytes: int
    spool_limit_bytes: int

    def summary(self) -> str:
        if self.failing is not None:
            return f"failing: {self.failing}"
        if self.spooling is not None:
            return (
                f"spooling: {self.spooling} ({self.spool_bytes >> 20} MB of "
                f"{self.spool_limit_bytes >> 20} MB)"
            )
        return "ok"


@dataclass(slots=True)
class _Unstored:
    """A batch's rows that an attempt did not store, and why."""

    items: list[Item]
    cause: str


class AuditWriter:
    def __init__(
        self,
        sink: AuditSink,
        *,
        batch_max: int = 500,
        wait_timeout_s: float = 10.0,
        mode: AuditMode = AuditMode.STRICT,
        spool: Spool | None = None,
        spool_after_s: float = 2.0,
        queue_max: int = 20_000,
    ) -> None:
        self.sink = sink
        self.batch_max = batch_max
        self.wait_timeout_s = wait_timeout_s
        self.mode = mode
        self.spool = spool
        self.spool_after_s = spool_after_s
        self.queue_max = queue_max
        self._pending: list[Item] = []
        self._wakeup = asyncio.Event()
        self._kick = asyncio.Event()  # the replayer: try the database now
        self._task: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._late: set[asyncio.Future[None]] = set()  # commits given up on, still running
        self._closing = False
        self.batches = 0  # committed transactions, for tests and metrics
        self.rows = 0
        # Why no row can be recorded now (None: rows are). A database that answers a
        # ping may still refuse writes (a full or read-only disk): readiness asks this.
        self.failing: str | None = None
        self.spooling: str | None = None  # why batches go to the spool (None: to the database)
        self.refused = 0  # rows not kept: the queue was full and their requests refused
        self._in_flight = 0  # rows of the batch being stored
        self._warned = False

    @property
    def backlog(self) -> int:
        """Rows queued or being stored, not yet durable."""
        return len(self._pending) + self._in_flight

    def status(self) -> AuditStatus:
        size, limit = (self.spool.size_bytes, self.spool.max_bytes) if self.spool else (0, 0)
        return AuditStatus(self.mode, self.failing, self.spooling, self.backlog, size, limit)

    def spool_filling(self) -> tuple[float, float]:
        """The spool's bytes, and the bytes past which it is filling (for an alert's check)."""
        assert self.spool is not None
        return float(self.spool.size_bytes), SPOOL_WARN_AT * self.spool.max_bytes

    def start(self) -> None:
        if self.spool is not None:
            self.spool.open()
            self._replayer = asyncio.create_task(self._replay(), name="audit-replayer")
            self._kick.set()  # at once: a process that stopped may have left rows behind
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    def admit(self) -> None:
        """Refuse a request up front when its row could not be recorded."""
        if len(self._pending) >= self.queue_max:
            raise AuditUnavailable("the audit log is not keeping up; the request was not served")
        if self.failing is not None and self.spool is not None:
            raise AuditUnavailable("the audit log cannot be written right now")

    def submit(self, row: Row) -> asyncio.Future[None]:
        """Queue a row; the future resolves when it is durable."""
        if len(self._pending) >= self.queue_max:
            self.refused += 1
            raise AuditUnavailable("the audit log is not keeping up; the request was not completed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        self._wakeup.set()
        return future

    async def write(self, row: Row) -> None:
        """Queue a row; in strict mode, wait until it is durable (or ``wait_timeout_s``)."""
        future = self.submit(row)
        if self.mode is AuditMode.FAST or row.get("error_code") == AuditUnavailable.code:
            return  # a refusal is not held up by its own row
        try:
            async with asyncio.timeout(self.wait_timeout_s):
                await future  # cancelled or not, the row stays queued (and is stored)
        except TimeoutError:
            # Still queued, stored when it can be: it must say what the caller got.
            row["status"], row["error_code"] = AuditUnavailable.status, AuditUnavailable.code
            raise AuditUnavailable(
                "the audit log cannot be written right now; the request was not completed"
            ) from None

    async def opened(self, row: Row) -> None:
        """A stream is about to release its first byte: its opening row must be durable."""
        if self.spool is None:
            return
        try:
            await self.spool.opened(row)
        except (SpoolFull, OSError) as exc:
            self.failing = cause(exc) if isinstance(exc, OSError) else str(exc)
            raise AuditUnavailable("the audit log cannot be written right now") from None

    # --- the writer task -----------------------------------------------------------

    async def _run(self) -> None:
        while not (self._closing and not self._pending):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self.batch_max]
                del self._pending[: self.batch_max]
                self._in_flight = len(batch)
                try:
                    await self._store(batch)
                finally:
                    self._in_flight = 0

    async def _store(self, batch: list[Item]) -> None:
        """Make the batch durable: in the database, else in the spool; retry if neither."""
        delay = 0.05
        to_database = self.spooling is None
        while True:
            if to_database:
                unstored = await self._commit(batch, self.spool_after_s if self.spool else None)
                if unstored is None:
                    self.failing = None
                    return
                batch = unstored.items
                if self.spool is None:
                    self.failing = unstored.cause
                    log.warning(
                        "audit batch of %d rows failed (%s); retrying in %.2fs",
                        len(batch), unstored.cause, delay,
                    )  # fmt: skip
                elif self.spooling is None:
                    self._spool_from_now(unstored.cause)
            if self.spool is not None and await self._to_spool(batch):
                return
            to_database = True  # the spool's disk may be the one in trouble
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _commit(self, batch: list[Item], timeout_s: float | None) -> _Unstored | None:
        """One attempt at the database; what it did not store, or None."""
        rows = [row for row, _ in batch]
        try:
            await self._insert(rows, timeout_s)
        except RejectedRows as exc:
            if len(batch) == 1:  # not transient: this row can never be stored
                log.error(
                    "audit row rejected by the database (request %s): %s",
                    rows[0].get("request_id"), cause(exc),
                )  # fmt: skip
                if not batch[0][1].done():
                    batch[0][1].set_exception(AuditUnavailable("the audit row could not be stored"))
                return None
            for i, item in enumerate(batch):  # find the offending row(s)
                unstored = await self._commit([item], timeout_s)
                if unstored is not None:
                    return _Unstored(batch[i:], unstored.cause)
            return None
        except Exception as exc:  # noqa: BLE001 - the database's trouble: keep the rows
            return _Unstored(batch, cause(exc))
        self.batches += 1
        self.rows += len(batch)
        self._durable(batch)
        return None

    async def _insert(self, rows: list[Row], timeout_s: float | None) -> None:
        if timeout_s is None:
            await self.sink.insert(rows)
            return
        commit = asyncio.ensure_future(self.sink.insert(rows))
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(commit)
        except TimeoutError:
            # It may still land; the spooled copy is then skipped at replay.
            self._late.add(commit)
            commit.add_done_callback(_forget(self._late))
            raise

    def _spool_from_now(self, why: str) -> None:
        self.spooling = why
        log.warning("audit: the database is not taking rows (%s); spooling them to disk", why)
        self._kick.set()

    async def _to_spool(self, batch: list[Item]) -> bool:
        assert self.spool is not None
        try:
            await self.spool.append([row for row, _ in batch])
        except (SpoolFull, OSError) as exc:
            why = cause(exc) if isinstance(exc, OSError) else str(exc)
            if self.failing != why:
                log.error(
                    "audit: %d rows can be stored neither in the database nor in the "
                    "spool (%s); requests are refused until one of them can",
                    len(batch),
                    why,
                )
            self.failing = why
            return False
        self.failing = None
        self._durable(batch)
        self._warn_if_filling()
        return True

    def _durable(self, batch: list[Item]) -> None:
        for row, future in batch:
            if self.spool is not None:
                self.spool.settled(row["request_id"])
            if not future.done():
                future.set_result(None)

    def _warn_if_filling(self) -> None:
        assert self.spool is not None
        share = self.spool.size_bytes / self.spool.max_bytes
        if share >= SPOOL_WARN_AT and not self._warned:
            log.warning(
                "audit spool at %d%% of its limit (AUDIT_SPOOL_MAX_MB); at the limit requests "
                "are refused with audit_unavailable", round(share * 100),
            )  # fmt: skip
            self._warned = True
        elif share < SPOOL_WARN_AT / 2:
            self._warned = False

    # --- the replayer task -----------------------------------------------------------

    async def _replay(self) -> None:
        """Drain the spool into the database whenever the writer spools, and now and then."""
        assert self.spool is not None
        delay = 0.25
        while True:
            try:  # asyncio.timeout, not wait_for: in 3.11 wait_for may swallow a cancel
                async with asyncio.timeout(delay if self.spooling is not None else ADOPT_EVERY_S):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()
            try:
                drained = await self.spool.drain(self._replay_chunk)
            except OSError as exc:
                log.error("audit spool: replay failed (%s); retrying", cause(exc))
                drained = False
            if self.spooling is None:
                continue
            if drained:  # nothing left; but had the database anything to take? ask it
                try:
                    await self.sink.insert([], fresh_only=True)
                except Exception:  # noqa: BLE001 - still away
                    drained = False
            if not drained:
                delay = min(delay * 2, 5.0)
                continue
            log.warning("audit: the database takes rows again (%s); the spool is replayed",
                        self.spooling)  # fmt: skip
            self.spooling = None
            delay = 0.25
            self._kick.set()  # once more, for what was spooled while this drain ran

    async def _replay_chunk(self, rows: list[Row]) -> None:
        try:
            await self.sink.insert(rows, fresh_only=True)
        except RejectedRows as exc:
            if len(rows) == 1:  # it can never be stored: do not hold the spool up for it
                log.error(
                    "audit row rejected by the database on replay (request %s): %s",
                    rows[0].get("request_id"), cause(exc),
                )  # fmt: skip
                return
            for row in rows:
                await self._replay_chunk([row])
            return
        self.batches += 1
        self.rows += len(rows)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop once everything queued is durable (or ``timeout_s`` passed)."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._task, timeout_s)
        except TimeoutError:
            log.error("audit: %d rows could not be written at shutdown", len(self._pending))
        self._task = None
        if self._replayer is not None:  # what it did not replay, the next process will
            self._replayer.cancel()
            await asyncio.gather(self._replayer, return_exceptions=True)
        if self.spool is not None:
            await self.spool.close()
        await self.sink.close()


def _forget(late: set[asyncio.Future[None]]) -> Callable[[asyncio.Future[None]], None]:
    def done(commit: asyncio.Future[None]) -> None:
        late.discard(commit)
        if not commit.cancelled():
            commit.exception()  # retrieved: its failure was already handled as a timeout

    return done
