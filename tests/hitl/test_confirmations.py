"""Pending confirmations on both stores: bound to their tenant, decided exactly once, expiring."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from llm_gateway.hitl.confirmations import Confirmation, Confirmations, new_confirmation_id
from tests.state.cases import StoreCase

NOW = 1_000.0


def _pending(**fields: object) -> Confirmation:
    values: dict[str, object] = {
        "id": new_confirmation_id(), "tenant": "acme", "user_id": "alice",
        "conversation": "conv-1", "rule": 0, "verb": "terminate",
        "phrase": "confirm terminate 7 instances", "scope": ("i-1", "i-2"),
        "environment": "production", "requires_mfa": False, "approvers": (),
        "created_at": NOW, "expires_at": NOW + 900, "cooldown_until": NOW + 5,
        "held": {"tool_calls": [{"id": "c1", "name": "terminate_instances", "arguments": "{}"}]},
    }  # fmt: skip
    values.update(fields)
    return Confirmation(**values)  # type: ignore[arg-type]


def _confirmations(case: StoreCase) -> Confirmations:
    # The confirmations' own clock is the case's (a fake one on memory, real time on Redis).
    clock = case.clock if case.clock is not None else (lambda: NOW)
    return Confirmations(case.store, clock)


async def test_a_pending_confirmation_is_found_by_id_and_by_its_conversation(
    store_case: StoreCase,
) -> None:
    confirmations = _confirmations(store_case)
    pending = _pending()
    await confirmations.open(pending)
    assert await confirmations.get(pending.id, tenant="acme") == pending
    assert await confirmations.for_conversation("acme", "alice", "conv-1") == pending
    assert await confirmations.for_conversation("acme", "bob", "conv-1") is None
    assert await confirmations.for_conversation("globex", "alice", "conv-1") is None


async def test_another_tenant_never_sees_it(store_case: StoreCase) -> None:
    confirmations = _confirmations(store_case)
    pending = _pending()
    await confirmations.open(pending)
    assert await confirmations.get(pending.id, tenant="globex") is None
    assert await confirmations.get(pending.id, tenant=None) is None


async def test_of_concurrent_decisions_exactly_one_wins_and_none_after(
    store_case: StoreCase,
) -> None:
    confirmations = _confirmations(store_case)
    pending = _pending()
    await confirmations.open(pending)
    outcomes = await asyncio.gather(
        *(confirmations.decide(pending, "confirmed") for _ in range(5)),
        confirmations.decide(pending, "cancelled"),
    )
    won = [o for o in outcomes if o is not None]
    assert len(won) == 1
    assert (await confirmations.get(pending.id, tenant="acme")) == won[0]
    assert await confirmations.decide(pending, "confirmed") is None  # no replay
    assert await confirmations.for_conversation("acme", "alice", "conv-1") is None


async def test_an_expired_confirmation_is_gone(store_case: StoreCase) -> None:
    confirmations = _confirmations(store_case)
    if store_case.clock is None:  # Redis keeps real time: expire it by its TTL
        pending = _pending(expires_at=NOW + 0.05)
        confirmations.clock = lambda: NOW
        await confirmations.open(pending)
        await store_case.until_gone(f"confirmation:{pending.id}")
    else:
        pending = _pending()
        await confirmations.open(pending)
        store_case.clock.now = pending.expires_at
    assert await confirmations.get(pending.id, tenant="acme") is None
    assert await confirmations.decide(pending, "confirmed") is None


def test_an_encoded_confirmation_decodes_to_itself() -> None:
    pending = _pending()
    assert Confirmation.decode(pending.encode()) == pending
    assert Confirmation.decode(replace(pending, status="cancelled").encode()).status == "cancelled"


class _Clock:
    """The confirmations' clock, moved by the test; the memory store's moves with it."""

    def __init__(self, case: StoreCase) -> None:
        self.case, self.now = case, NOW

    def __call__(self) -> float:
        return self.now

    def to(self, moment: float) -> None:
        if self.case.clock is not None:
            self.case.clock.now = moment
        self.now = moment


async def test_an_unanswered_confirmation_is_reported_expired_once(store_case: StoreCase) -> None:
    clock = _Clock(store_case)
    confirmations = Confirmations(store_case.store, clock)
    pending, decided = _pending(), _pending()
    waiting = _pending(expires_at=NOW + 3600)
    for c in (pending, decided, waiting):
        await confirmations.open(c)
    assert await confirmations.decide(decided, "cancelled") is not None
    assert await confirmations.expired() == []  # nothing has expired yet
    clock.to(pending.expires_at)
    [expired] = await confirmations.expired()
    assert (expired.id, expired.user_id, expired.tenant) == (pending.id, "alice", "acme")
    assert (expired.verb, expired.items, expired.rule) == ("terminate", 2, 0)
    assert await confirmations.expired() == []  # reported once
    listed = await confirmations.open_for_tenant("acme")
    assert [c.id for c in listed] == [waiting.id]


async def test_a_short_challenge_does_not_shorten_a_longer_ones_listing(
    store_case: StoreCase,
) -> None:
    clock = _Clock(store_case)
    confirmations = Confirmations(store_case.store, clock)
    long = _pending(expires_at=NOW + 3600)
    short = _pending(expires_at=NOW + 0.05)
    await confirmations.open(long)
    await confirmations.open(short)
    if store_case.clock is None:  # the index's TTL is Redis's own: let it pass
        await asyncio.sleep(0.1)
    clock.to(short.expires_at)
    assert [c.id for c in await confirmations.open_for_tenant("acme")] == [long.id]
