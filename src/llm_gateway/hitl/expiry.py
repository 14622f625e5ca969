"""Confirmations that nobody answered: each expiry is an audit event of its own.

A challenge that is never answered leaves no request to record its end, so
a background task of each gateway process looks, every ``interval_s``, for
confirmations past their expiry that were never decided, and hands each one
to the recorders as a record of the action ``confirmation.expire``: the
requester's identity, the confirmation (``<id>:expired``), no tokens, no
cost. With several replicas on one Redis, each expiry is taken by exactly one
of them (:meth:`~llm_gateway.hitl.confirmations.Confirmations.expired`), so
the trail has it once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from llm_gateway.hitl.confirmations import Confirmations, Expired
from llm_gateway.records import Recorder, RequestRecord

log = logging.getLogger(__name__)

ENDPOINT = "confirmation.expire"


def expiry_record(expired: Expired) -> RequestRecord:
    """The audit trail's record of one expiry."""
    return RequestRecord(
        request_id=os.urandom(16).hex(),
        timestamp=datetime.fromtimestamp(expired.expires_at, UTC),
        endpoint=ENDPOINT,
        user_id=expired.user_id, role=None, team=None, tenant=expired.tenant, key_id=None,
        auth_method=None, model_requested=None, model=None, provider=None, upstream_model=None,
        stream=False, attempts=(), status=200, error_code=None, latency_ms=0.0, tokens_in=0,
        tokens_out=0, tokens_estimated=False, cost_usd=0.0, prompt=None, response=None,
        policy_decision=None, policy_reasons=(), policy_revision=None, policy_eval_us=None,
        dlp_action=None, dlp_findings=(), confirmation=f"{expired.id}:expired",
    )  # fmt: skip


class ExpirySweeper:
    def __init__(
        self, confirmations: Confirmations, recorders: Sequence[Recorder], interval_s: float
    ) -> None:
        self.confirmations = confirmations
        self.recorders = tuple(recorders)
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Record every expiry not yet recorded; how many there were."""
        expired = await self.confirmations.expired()
        for entry in expired:
            record = expiry_record(entry)
            for recorder in self.recorders:
                await recorder.record(record)
        return len(expired)

    def start(self) -> None:
        """Sweep in the background, from the app's lifespan, on its event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hitl-expiry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except Exception:  # the store or the audit trail is down: the next sweep retries
                log.warning("confirmations: expiries could not be recorded", exc_info=True)
