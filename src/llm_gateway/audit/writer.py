"""Group commit for audit rows: every request waits for its row, few transactions are made.

Requests append their row and wait. One writer task takes everything pending
and inserts it in a single transaction; whatever arrives meanwhile forms the
next batch. Under load, batches grow and the cost of a commit is shared;
at low load a row is committed as soon as it arrives. A request's answer is
completed only after its row is committed, so an answered request always has
its audit record.

If the database fails, the batch is retried with backoff and never dropped;
a request that cannot get its row committed within ``wait_timeout_s`` fails
with ``audit_unavailable`` (fail closed) while its row stays queued.
"""

from __future__ import annotations

import asyncio
import logging

from llm_gateway.audit.sinks import AuditSink, RejectedRows, Row
from llm_gateway.errors import GatewayError
from llm_gateway.storage.failures import cause

log = logging.getLogger(__name__)


class AuditUnavailable(GatewayError):
    status = 503
    code = "audit_unavailable"


class AuditWriter:
    def __init__(
        self, sink: AuditSink, *, batch_max: int = 500, wait_timeout_s: float = 10.0
    ) -> None:
        self.sink = sink
        self.batch_max = batch_max
        self.wait_timeout_s = wait_timeout_s
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # committed transactions, for tests and metrics
        self.rows = 0
        self._committing = 0  # rows of the batch being committed

    @property
    def backlog(self) -> int:
        """Rows queued or being committed, not yet committed (the metrics' gauge)."""
        return len(self._pending) + self._committing

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    def submit(self, row: Row) -> asyncio.Future[None]:
        """Queue a row; the future resolves when it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        self._wakeup.set()
        return future

    async def write(self, row: Row) -> None:
        """Queue a row and wait until it is committed (or fail after ``wait_timeout_s``)."""
        future = self.submit(row)
        try:
            async with asyncio.timeout(self.wait_timeout_s):
                await future  # if the wait is cancelled, the row stays queued all the same
        except TimeoutError:
            raise AuditUnavailable(
                "the audit log cannot be written right now; the request was not completed"
            ) from None

    async def _run(self) -> None:
        while not (self._closing and not self._pending):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self.batch_max]
                del self._pending[: self.batch_max]
                self._committing = len(batch)
                try:
                    await self._commit(batch)
                finally:
                    self._committing = 0

    async def _commit(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        delay = 0.05
        while True:
            try:
                await self.sink.insert([row for row, _ in batch])
            except RejectedRows as exc:
                # Not transient: find the offending row(s) rather than retry forever.
                if len(batch) > 1:
                    for item in batch:
                        await self._commit([item])
                    return
                log.error(
                    "audit row rejected by the database (request %s): %s",
                    batch[0][0].get("request_id"), cause(exc),
                )  # fmt: skip
                if not batch[0][1].done():
                    batch[0][1].set_exception(AuditUnavailable("the audit row could not be stored"))
                return
            except Exception as exc:  # noqa: BLE001 - connection trouble: keep the rows, retry
                log.warning(
                    "audit batch of %d rows failed (%s); retrying in %.2fs",
                    len(batch), cause(exc), delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.batches += 1
            self.rows += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            return

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop the writer once everything queued is committed (or ``timeout_s`` passed)."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._task, timeout_s)
        except TimeoutError:
            log.error("audit: %d rows could not be written at shutdown", len(self._pending))
        self._task = None
        await self.sink.close()
