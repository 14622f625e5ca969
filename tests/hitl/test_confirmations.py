"""Pending confirmations on both stores: bound to their tenant, decided exactly once, expiring."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from llm_gateway.hitl.confirmations import Confirmation, Confirmations
from tests.hitl.support import NOW, Clock, pending_confirmation
from tests.state.cases import StoreCase


def _confirmations(case: StoreCase) -> Confirmations:
    # The confirmations' own clock is the case's (a fake one on memory, real time on Redis).
    clock = case.clock if case.clock is not None else (lambda: NOW)
    return Confirmations(case.store, clock)


async def test_a_pending_confirmation_is_found_by_id_and_by_its_conversation(
    store_case: StoreCase,
) -> None:
    confirmations = _confirmations(store_case)
    pending = pending_confirmation()
    await confirmations.open(pending)
    assert await confirmations.get(pending.id, tenant="acme") == pending
    assert await confirmations.for_conversation("acme", "alice", "conv-1") == pending
    assert await confirmations.for_conversation("acme", "bob", "conv-1") is None
    assert await confirmations.for_conversation("globex", "alice", "conv-1") is None


async def test_another_tenant_never_sees_it(store_case: StoreCase) -> None:
    confirmations = _confirmations(store_case)
    pending = pending_confirmation()
    await confirmations.open(pending)
    assert await confirmations.get(pending.id, tenant="globex") is None
    assert await confirmations.get(pending.id, tenant=None) is None


async def test_of_concurrent_decisions_exactly_one_wins_and_none_after(
    store_case: StoreCase,
) -> None:
    confirmations = _confirmations(store_case)
    pending = pending_confirmation()
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
        pending = pending_confirmation(expires_at=NOW + 0.05)
        confirmations.clock = lambda: NOW
        await confirmations.open(pending)
        await store_case.until_gone(f"confirmation:{pending.id}")
    else:
        pending = pending_confirmation()
        await confirmations.open(pending)
        store_case.clock.now = pending.expires_at
    assert await confirmations.get(pending.id, tenant="acme") is None
    assert await confirmations.decide(pending, "confirmed") is None


def test_an_encoded_confirmation_decodes_to_itself() -> None:
    pending = pending_confirmation()
    assert Confirmation.decode(pending.encode()) == pending
    assert Confirmation.decode(replace(pending, status="cancelled").encode()).status == "cancelled"


async def test_an_unanswered_confirmation_is_reported_expired_once(store_case: StoreCase) -> None:
    clock = Clock(store_case)
    confirmations = Confirmations(store_case.store, clock)
    pending, decided = pending_confirmation(), pending_confirmation()
    waiting = pending_confirmation(expires_at=NOW + 3600)
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
    clock = Clock(store_case)
    confirmations = Confirmations(store_case.store, clock)
    long = pending_confirmation(expires_at=NOW + 3600)
    short = pending_confirmation(expires_at=NOW + 0.05)
    await confirmations.open(long)
    await confirmations.open(short)
    if store_case.clock is None:  # the index's TTL is Redis's own: let it pass
        await asyncio.sleep(0.1)
    clock.to(short.expires_at)
    assert [c.id for c in await confirmations.open_for_tenant("acme")] == [long.id]
