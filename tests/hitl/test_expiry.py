"""A confirmation nobody answered becomes one audit event, written once."""

from __future__ import annotations

from llm_gateway.hitl.confirmations import Confirmations
from llm_gateway.hitl.expiry import ExpirySweeper
from llm_gateway.records import RequestRecord
from tests.hitl.support import NOW, Clock, pending_confirmation
from tests.state.cases import StoreCase


class _Kept:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    async def record(self, record: RequestRecord) -> None:
        self.records.append(record)


async def test_each_expiry_is_recorded_once_with_who_asked(store_case: StoreCase) -> None:
    clock = Clock(store_case)
    confirmations = Confirmations(store_case.store, clock)
    kept = _Kept()
    sweeper = ExpirySweeper(confirmations, [kept], interval_s=1)
    pending = pending_confirmation()
    await confirmations.open(pending)
    assert await sweeper.sweep() == 0
    clock.to(NOW + 901)
    assert await sweeper.sweep() == 1
    assert await sweeper.sweep() == 0
    [record] = kept.records
    assert record.endpoint == "confirmation.expire"
    assert record.confirmation == f"{pending.id}:expired"
    assert (record.user_id, record.tenant, record.status) == ("alice", "acme", 200)
    assert (record.tokens_used, record.cost_usd) == (0, 0.0)
