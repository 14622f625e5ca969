"""The circuit breaker on both stores (memory and a real Redis), on a clock the tests move.

The breaker passes its own clock to its scripts, so the same controlled time
drives both backends and no test sleeps. On Redis, a "second replica" is a
second store with a pool of its own on the same keys, as another gateway
process would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from llm_gateway.routing.breaker import (
    Breaker,
    BreakerRules,
    BreakerState,
    BreakerStatus,
    Transition,
)
from llm_gateway.state import MemoryStore, Reply, Script, Store, StoreError, StoreUnavailable
from llm_gateway.state.redis import RedisStore
from llm_gateway.state.script import Arg
from tests.state.cases import StoreCase

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
RULES = BreakerRules(
    failure_rate_threshold=50, wait_duration_s=60, permitted_calls_in_half_open=3,
    window_size=20, minimum_calls=10,
)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def breaker(store: Store, clock: Clock, **options: object) -> Breaker:
    return Breaker(store, RULES, view_ttl_s=0, clock=clock, **options)  # type: ignore[arg-type]


async def record(b: Breaker, outcomes: str, name: str = "m") -> list[Transition | None]:
    """One result per letter: s a success, f a failure."""
    return [await b.record(name, letter == "s") for letter in outcomes]


async def open_circuit(b: Breaker, name: str = "m") -> None:
    await record(b, "f" * 10, name)
    assert not await b.admit(name)


@asynccontextmanager
async def replica(case: StoreCase) -> AsyncIterator[Store]:
    """Another process's view of the same store: on Redis, a new pool on the same keys."""
    store = case.store
    if not isinstance(store, RedisStore):
        yield store
        return
    kwargs = store.client.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
    other = RedisStore.from_url(url, prefix=store.prefix)
    try:
        yield other
    finally:
        await other.aclose()


# --- closed -> open --------------------------------------------------------------------


async def test_it_opens_when_the_failure_rate_reaches_the_threshold(store_case: StoreCase) -> None:
    clock = Clock()
    b = breaker(store_case.store, clock)
    assert await record(b, "sssssffff") == [None] * 9  # 4 of 9: 44%
    assert await b.admit("m")
    change = await b.record("m", False)  # 5 of 10: 50%
    assert change == Transition("m", CLOSED, OPEN, clock.now)
    assert not await b.admit("m")
    assert await b.admit("other")  # each model has its own circuit


async def test_it_stays_closed_below_the_minimum_number_of_calls(store_case: StoreCase) -> None:
    b = breaker(store_case.store, Clock())
    assert await record(b, "f" * 9) == [None] * 9
    assert await b.admit("m")
    assert await b.state("m") == BreakerStatus(CLOSED, calls=9, failures=9, retry_at=None)


async def test_the_window_holds_only_the_last_calls(store_case: StoreCase) -> None:
    b = breaker(store_case.store, Clock())
    assert await record(b, "s" * 11 + "f" * 9 + "s" * 20) == [None] * 40  # never over 45%
    assert await record(b, "f" * 9) == [None] * 9  # the first nine have left the window
    status = await b.state("m")
    assert status == BreakerStatus(CLOSED, calls=20, failures=9, retry_at=None)
    change = await b.record("m", False)  # 10 of the last 20 (of all 50: 38%)
    assert change is not None
    assert change.new is OPEN


# --- open -> half-open -> closed | open ----------------------------------------------------


async def test_the_full_cycle_closed_open_half_open_closed(store_case: StoreCase) -> None:
    clock = Clock()
    seen: list[Transition] = []
    b = breaker(store_case.store, clock, on_transition=seen.append)
    await open_circuit(b)
    opened_at = clock.now
    assert await b.state("m") == BreakerStatus(OPEN, 0, 0, retry_at=opened_at + 60)
    clock.now += 59
    assert not await b.admit("m")
    clock.now += 1
    assert [await b.admit("m") for _ in range(4)] == [True, True, True, False]
    assert (await b.state("m")) == BreakerStatus(HALF_OPEN, 0, 0, retry_at=None)
    assert await record(b, "ss") == [None, None]
    closed = await b.record("m", True)
    assert closed == Transition("m", HALF_OPEN, CLOSED, clock.now)
    assert await b.admit("m")
    assert [(t.old, t.new) for t in seen] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert seen[1].at == opened_at + 60
    assert await record(b, "f" * 9) == [None] * 9  # a fresh window: the minimum again
    assert await b.admit("m")


async def test_a_failed_trial_opens_it_again_for_a_whole_wait(store_case: StoreCase) -> None:
    clock = Clock()
    b = breaker(store_case.store, clock)
    await open_circuit(b)
    clock.now += 60
    assert await b.admit("m")
    assert await b.admit("m")
    assert await b.record("m", True) is None
    reopened = await b.record("m", False)
    assert reopened == Transition("m", HALF_OPEN, OPEN, clock.now)
    assert await b.record("m", True) is None  # a late trial's success changes nothing now
    assert not await b.admit("m")
    clock.now += 59
    assert not await b.admit("m")
    clock.now += 1
    assert await b.admit("m")


async def test_trials_that_never_report_are_written_off_after_a_wait(
    store_case: StoreCase,
) -> None:
    clock = Clock()
    b = breaker(store_case.store, clock)
    await open_circuit(b)
    clock.now += 60
    assert [await b.admit("m") for _ in range(4)] == [True, True, True, False]
    clock.now += 59
    assert not await b.admit("m")  # the trials may still answer
    clock.now += 1
    assert [await b.admit("m") for _ in range(4)] == [True, True, True, False]  # a new round


# --- shared across replicas -------------------------------------------------------------


async def test_two_replicas_see_one_circuit(store_case: StoreCase) -> None:
    clock = Clock()
    async with replica(store_case) as other_store:
        here, there = breaker(store_case.store, clock), breaker(other_store, clock)
        await record(here, "fffff")
        await record(there, "ffff")
        opened = await there.record("m", False)  # the window counts both replicas' calls
        assert opened is not None
        assert opened.new is OPEN
        assert not await here.admit("m")
        status = await here.state("m")
        assert status is not None
        assert status.state is OPEN
        clock.now += 60
        assert await here.admit("m")
        assert [await there.admit("m") for _ in range(3)] == [True, True, False]
        assert await record(there, "ss") == [None, None]
        closed = await here.record("m", True)
        assert closed is not None
        assert closed.new is CLOSED
        assert await there.admit("m")


async def test_concurrent_trial_admissions_never_exceed_the_permitted_number(
    store_case: StoreCase,
) -> None:
    clock = Clock()
    async with replica(store_case) as other_store:
        replicas = [breaker(store_case.store, clock), breaker(other_store, clock)]
        await open_circuit(replicas[0])
        clock.now += 60
        admitted = await asyncio.gather(*(replicas[i % 2].admit("m") for i in range(60)))
        assert admitted.count(True) == RULES.permitted_calls_in_half_open


async def test_each_transition_is_reported_by_one_replica_only(
    store_case: StoreCase, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="llm_gateway.routing.breaker")
    seen: list[Transition] = []
    async with replica(store_case) as other_store:
        replicas = [
            breaker(store, clock, on_transition=seen.append)
            for store in (store_case.store, other_store)
        ]
        await asyncio.gather(*(replicas[i % 2].record("m", False) for i in range(30)))
        clock.now += 60
        await asyncio.gather(*(replicas[i % 2].admit("m") for i in range(10)))
    assert [(t.old, t.new) for t in seen] == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    logged = [r for r in caplog.records if r.name == "llm_gateway.routing.breaker"]
    assert [(r.levelno, r.getMessage()) for r in logged] == [
        (logging.WARNING, "circuit breaker for model m: closed -> open"),
        (logging.INFO, "circuit breaker for model m: open -> half_open"),
    ]


async def test_every_key_has_an_expiry(store_case: StoreCase) -> None:
    clock = Clock()
    b = breaker(store_case.store, clock)
    await open_circuit(b, "opened")
    await record(b, "sf", "closed")
    clock.now += 60
    assert await b.admit("opened")
    keys = await store_case.keys()
    assert sorted(keys) == ["breaker:closed", "breaker:opened"]
    for key in keys:
        ttl = await store_case.store.ttl(key)
        assert ttl is not None
        assert 0 < ttl <= 3600


# --- the local view ---------------------------------------------------------------------


class Counting(MemoryStore):
    """A memory store that counts the scripts it runs (its views share the count)."""

    runs: list[str]
    ran: asyncio.Event  # set at each script, for a test to wait on

    def __init__(self) -> None:
        super().__init__()
        self.runs = []
        self.ran = asyncio.Event()

    def namespaced(self, namespace: str) -> MemoryStore:
        view = Counting.__new__(Counting)
        Store.__init__(view, self._child_prefix(namespace))
        view._data, view.runs, view.ran = self._data, self.runs, self.ran
        return view

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        self.runs.append(script.name)
        self.ran.set()
        return await super().run(script, keys, args)


async def test_a_closed_circuit_is_admitted_from_the_local_view_while_it_is_fresh() -> None:
    clock, store = Clock(), Counting()
    b = Breaker(store, RULES, view_ttl_s=1.0, flush_s=0, clock=clock)
    assert all([await b.admit("m") for _ in range(10)])
    assert store.runs == ["breaker_admit"]  # the first asked, the rest trusted its answer
    clock.now += 1
    assert await b.admit("m")
    assert store.runs == ["breaker_admit"] * 2
    await b.record("m", True)
    clock.now += 0.5
    assert await b.admit("m")  # the result's reply refreshed the view
    assert store.runs == ["breaker_admit", "breaker_admit", "breaker_record"]


async def test_a_circuit_opened_elsewhere_is_seen_once_the_view_ages() -> None:
    clock, store = Clock(), Counting()
    here = Breaker(store, RULES, view_ttl_s=1.0, clock=clock)
    assert await here.admit("m")
    await open_circuit(breaker(store, clock))  # another replica
    assert await here.admit("m")  # within the view's age: still closed here
    clock.now += 1
    assert not await here.admit("m")
    runs = len(store.runs)
    assert not await here.admit("m")  # open, and its view fresh: no store call
    assert len(store.runs) == runs


# --- successes sent together ------------------------------------------------------------


async def until_sent(store: Counting, runs: int) -> None:
    """Wait for the held successes' round trip (the flush is on the event loop's clock)."""
    async with asyncio.timeout(5):
        while len(store.runs) < runs:
            store.ran.clear()
            await store.ran.wait()


async def fresh_closed(flush_s: float = 0.01) -> tuple[Breaker, Counting, Clock]:
    """A breaker whose view of ``m`` is closed and fresh, and the store it has asked once."""
    clock, store = Clock(), Counting()
    b = Breaker(store, RULES, view_ttl_s=60, flush_s=flush_s, clock=clock)
    assert await b.admit("m")
    assert store.runs == ["breaker_admit"]
    return b, store, clock


async def test_successes_on_a_closed_circuit_go_to_the_store_together() -> None:
    b, store, _ = await fresh_closed()
    assert await record(b, "s" * 7) == [None] * 7
    assert store.runs == ["breaker_admit"]  # held here
    await until_sent(store, 2)
    assert store.runs == ["breaker_admit", "breaker_record"]  # one round trip for seven
    assert await b.state("m") == BreakerStatus(CLOSED, calls=7, failures=0, retry_at=None)


async def test_a_failure_is_sent_at_once_behind_the_held_successes() -> None:
    b, store, _ = await fresh_closed(flush_s=60)
    await record(b, "sss")
    assert await b.record("m", False) is None
    assert store.runs == ["breaker_admit", "breaker_record"]
    assert await b.state("m") == BreakerStatus(CLOSED, calls=4, failures=1, retry_at=None)
    # Two held successes count ahead of the next failures: 10 calls, 5 failed, opens on
    # the last (without them the window would be 8 calls, under the minimum of 10).
    opened = Transition("m", CLOSED, OPEN, b.clock())
    assert await record(b, "ssffff") == [None] * 5 + [opened]


async def test_a_window_of_successes_is_sent_without_waiting() -> None:
    b, store, _ = await fresh_closed(flush_s=60)
    await record(b, "s" * (RULES.window_size - 1))
    assert store.runs == ["breaker_admit"]
    await b.record("m", True)
    assert store.runs == ["breaker_admit", "breaker_record"]
    status = await b.state("m")
    assert status == BreakerStatus(CLOSED, calls=RULES.window_size, failures=0, retry_at=None)


async def test_successes_are_not_held_once_the_view_is_stale_or_not_closed() -> None:
    b, store, clock = await fresh_closed(flush_s=60)
    clock.now += 60  # the view has aged: the success goes at once, and refreshes it
    await b.record("m", True)
    assert store.runs[-1] == "breaker_record"
    await open_circuit(b)
    clock.now += 60
    assert await b.admit("m")  # half-open: every trial's result counts at once
    runs = len(store.runs)
    await b.record("m", True)
    assert len(store.runs) == runs + 1


@pytest.mark.parametrize(
    ("history", "batch"),
    [("", "sssfffffffff"), ("ssssssss", "fffffsssss"), ("f" * 9, "sfs"), ("s" * 30, "f" * 12)],
)
async def test_one_round_trip_of_results_ends_as_separate_calls_would(
    store_case: StoreCase, history: str, batch: str
) -> None:
    """The record script takes several results at once; the circuit it leaves is the same."""
    clock = Clock()
    one_by_one = breaker(store_case.store, clock)
    await record(one_by_one, history + batch, "separate")
    together = breaker(store_case.store, clock)
    await record(together, history, "together")
    await together._send("together", batch)
    assert await together.state("together") == await one_by_one.state("separate")


async def test_a_batch_that_spans_a_half_open_round_closes_it_and_starts_a_window(
    store_case: StoreCase,
) -> None:
    clock = Clock()
    b = breaker(store_case.store, clock)
    await open_circuit(b)
    clock.now += 60
    assert [await b.admit("m") for _ in range(3)] == [True, True, True]
    change = await b._send("m", "sssff")  # three trials pass; two later failures count anew
    assert change == Transition("m", HALF_OPEN, CLOSED, clock.now)
    assert await b.state("m") == BreakerStatus(CLOSED, calls=2, failures=2, retry_at=None)


# --- store trouble ------------------------------------------------------------------------


class Failing(MemoryStore):
    never_waits = False

    def __init__(self, error: StoreError | None = None, reply: Reply = None) -> None:
        super().__init__()
        self.error, self.reply = error, reply

    def namespaced(self, namespace: str) -> MemoryStore:
        return self

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        if self.error is not None:
            raise self.error
        return self.reply

    async def hash_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        if self.error is not None:
            raise self.error
        return await super().hash_get(key, fields)


class Hanging(MemoryStore):
    never_waits = False

    def namespaced(self, namespace: str) -> MemoryStore:
        return self

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        await asyncio.sleep(3600)
        return None


@pytest.mark.parametrize(
    "store",
    [Failing(StoreUnavailable("Redis did not answer")), Failing(StoreError("WRONGTYPE")),
     Failing(reply=[b"odd"]), Failing(reply=None), Failing(reply=[0, 7, 0, 1]), Hanging()],
    ids=["unavailable", "refused", "wrong-shape", "nil", "unknown-state", "hanging"],
)  # fmt: skip
async def test_store_trouble_fails_open(store: Store) -> None:
    b = Breaker(store, RULES, view_ttl_s=0, clock=Clock(), timeout_s=0.05)
    for _ in range(3):
        assert await b.admit("m")
        assert await b.record("m", False) is None


async def test_store_trouble_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    b = Breaker(Failing(StoreUnavailable("Redis did not answer")), RULES, clock=Clock())
    for _ in range(20):
        assert await b.admit("m")
        await b.record("m", False)
    assert await b.state("m") is None
    warnings = [r for r in caplog.records if "state store failed" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [({"failure_rate_threshold": 0}, "percentage"), ({"failure_rate_threshold": 101}, "percentage"),
     ({"wait_duration_s": 0}, "wait"), ({"permitted_calls_in_half_open": 0}, "permitted"),
     ({"minimum_calls": 21}, "minimum"), ({"minimum_calls": 0}, "minimum")],
)  # fmt: skip
def test_rules_that_cannot_work_are_refused(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerRules(**change)  # type: ignore[arg-type]
