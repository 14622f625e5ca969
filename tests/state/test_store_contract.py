"""The contract every store keeps, run against the memory store and a real Redis.

Expiry runs on the memory store's fake clock, and on Redis with TTLs of tens
of milliseconds, polled until the key is gone (no upper bound on wall time).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from llm_gateway.state import Ops, Reply, Script, StoreError
from tests.state.cases import StoreCase

HOUR = 3600.0


async def test_get_set_delete(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.get("k") is None
    await store.set("k", b"v\x00\xff", ttl_s=HOUR)
    assert await store.get("k") == b"v\x00\xff"
    await store.set("k", b"w", ttl_s=HOUR)
    assert await store.get("k") == b"w"
    await store.set("j", b"x", ttl_s=HOUR)
    assert await store.delete("k", "j", "missing") == 2
    assert await store.get("k") is None
    assert await store.delete() == 0


async def test_ttl_is_set_read_and_expires(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.ttl("k") is None
    await store.set("k", b"v", ttl_s=60)
    ttl = await store.ttl("k")
    assert ttl is not None
    assert 0 < ttl <= 60
    assert await store.expire("k", ttl_s=0.05)
    await store_case.until_gone("k")
    assert await store.get("k") is None
    assert not await store.expire("k", ttl_s=60)  # absent: nothing to refresh


async def test_set_replaces_the_ttl_and_expire_refreshes_it(store_case: StoreCase) -> None:
    store = store_case.store
    await store.set("k", b"v", ttl_s=5)
    await store.set("k", b"v", ttl_s=HOUR)
    ttl = await store.ttl("k")
    assert ttl is not None
    assert ttl > 5
    assert await store.expire("k", ttl_s=10)
    ttl = await store.ttl("k")
    assert ttl is not None
    assert ttl <= 10


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
async def test_a_ttl_must_be_positive_and_finite(store_case: StoreCase, bad: float) -> None:
    with pytest.raises(ValueError, match="TTL"):
        await store_case.store.set("k", b"v", ttl_s=bad)
    with pytest.raises(ValueError, match="TTL"):
        await store_case.store.incr("n", ttl_s=bad)
    assert await store_case.store.get("k") is None


async def test_set_if_absent(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.set_if_absent("lock", b"a", ttl_s=0.05)
    assert not await store.set_if_absent("lock", b"b", ttl_s=HOUR)
    assert await store.get("lock") == b"a"
    await store_case.until_gone("lock")
    assert await store.set_if_absent("lock", b"c", ttl_s=HOUR)
    assert await store.get("lock") == b"c"


async def test_incr_counts_and_sets_the_expiry_on_creation_only(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.incr("n", ttl_s=60) == 1
    assert await store.incr("n", 4, ttl_s=HOUR) == 5  # the window keeps its first expiry
    ttl = await store.ttl("n")
    assert ttl is not None
    assert 0 < ttl <= 60
    assert await store.incr("n", -2, ttl_s=60) == 3
    assert await store.get("n") == b"3"


async def test_an_incremented_window_expires_and_starts_over(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.incr("window", 7, ttl_s=0.05) == 7
    await store_case.until_gone("window")
    assert await store.incr("window", ttl_s=HOUR) == 1


async def test_concurrent_increments_are_exact_and_the_key_expires(store_case: StoreCase) -> None:
    store = store_case.store
    totals = await asyncio.gather(*(store.incr("hits", ttl_s=60) for _ in range(200)))
    assert sorted(totals) == list(range(1, 201))
    assert await store.get("hits") == b"200"
    ttl = await store.ttl("hits")
    assert ttl is not None
    assert 0 < ttl <= 60


async def test_incr_float(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.incr_float("cost", 0.5, ttl_s=60) == 0.5
    totals = await asyncio.gather(*(store.incr_float("cost", 0.25, ttl_s=60) for _ in range(20)))
    assert max(totals) == 5.5
    assert await store.incr_float("cost", -5.5, ttl_s=60) == 0.0
    ttl = await store.ttl("cost")
    assert ttl is not None
    assert 0 < ttl <= 60


async def test_incr_of_a_value_that_is_not_a_number_is_refused(store_case: StoreCase) -> None:
    store = store_case.store
    await store.set("k", b"pending", ttl_s=HOUR)
    with pytest.raises(StoreError):
        await store.incr("k", ttl_s=HOUR)
    assert await store.get("k") == b"pending"


async def test_compare_and_set_transitions(store_case: StoreCase) -> None:
    store = store_case.store
    assert not await store.compare_and_set("c", b"pending", b"approved", ttl_s=HOUR)
    assert await store.get("c") is None  # nothing to transition from
    assert await store.compare_and_set("c", None, b"pending", ttl_s=60)
    assert not await store.compare_and_set("c", None, b"pending", ttl_s=60)
    assert not await store.compare_and_set("c", b"approved", b"denied", ttl_s=60)
    assert await store.get("c") == b"pending"
    assert await store.compare_and_set("c", b"pending", b"approved", ttl_s=0.05)
    assert await store.get("c") == b"approved"
    ttl = await store.ttl("c")
    assert ttl is not None
    assert ttl <= 0.05  # the transition's TTL replaced the pending one's
    await store_case.until_gone("c")
    assert await store.compare_and_set("c", None, b"pending", ttl_s=HOUR)


async def test_compare_and_set_tells_an_empty_value_from_an_absent_one(
    store_case: StoreCase,
) -> None:
    store = store_case.store
    assert not await store.compare_and_set("c", b"", b"x", ttl_s=HOUR)
    await store.set("c", b"", ttl_s=HOUR)
    assert not await store.compare_and_set("c", None, b"x", ttl_s=HOUR)
    assert await store.compare_and_set("c", b"", b"x", ttl_s=HOUR)
    assert await store.get("c") == b"x"


async def test_concurrent_compare_and_set_has_exactly_one_winner(store_case: StoreCase) -> None:
    store = store_case.store
    await store.set("c", b"pending", ttl_s=HOUR)
    outcomes = [b"approved", b"denied", b"expired"] * 20
    won = await asyncio.gather(
        *(store.compare_and_set("c", b"pending", new, ttl_s=HOUR) for new in outcomes)
    )
    assert won.count(True) == 1
    assert await store.get("c") == outcomes[won.index(True)]


async def test_hashes_set_read_and_expire_together(store_case: StoreCase) -> None:
    store = store_case.store
    assert await store.hash_get_all("h") == {}
    assert await store.hash_get("h", ["a"]) == [None]
    await store.hash_set("h", {"a": b"1", "b": b"2"}, ttl_s=60)
    await store.hash_set("h", {"b": b"3"}, ttl_s=60)
    assert await store.hash_get_all("h") == {"a": b"1", "b": b"3"}
    assert await store.hash_get("h", ["b", "z", "a"]) == [b"3", None, b"1"]
    assert await store.hash_get("h", []) == []
    assert await store.hash_delete("h", "a", "z") == 1
    assert await store.hash_delete("h") == 0
    assert await store.hash_get_all("h") == {"b": b"3"}
    ttl = await store.ttl("h")
    assert ttl is not None
    assert 0 < ttl <= 60
    await store.hash_set("h", {"c": b"4"}, ttl_s=0.05)
    await store_case.until_gone("h")
    assert await store.hash_get_all("h") == {}
    await store.hash_set("h", {"a": b"1"}, ttl_s=HOUR)
    assert await store.hash_delete("h", "a") == 1
    assert await store.ttl("h") is None  # the last field took the hash with it


async def test_a_plain_read_of_a_hash_is_refused(store_case: StoreCase) -> None:
    await store_case.store.hash_set("h", {"a": b"1"}, ttl_s=HOUR)
    with pytest.raises(StoreError):
        await store_case.store.get("h")


async def test_namespaces_never_collide(store_case: StoreCase) -> None:
    root = store_case.store
    vault, limits = root.namespaced("vault"), root.namespaced("limits")
    await vault.set("k", b"vault", ttl_s=HOUR)
    await limits.set("k", b"limits", ttl_s=HOUR)
    assert await limits.incr("n", ttl_s=HOUR) == 1
    assert await vault.get("k") == b"vault"
    assert await limits.get("k") == b"limits"
    assert await root.get("k") is None
    assert await vault.get("n") is None
    assert await root.get("vault:k") == b"vault"  # a view is a prefix, nothing more
    assert await vault.namespaced("x").get("k") is None
    assert await limits.delete("k") == 1
    assert await vault.get("k") == b"vault"
    await vault.aclose()  # a view owns nothing: the root still works
    assert await root.get("vault:k") == b"vault"
    with pytest.raises(ValueError, match="namespace"):
        root.namespaced("")


async def test_ping(store_case: StoreCase) -> None:
    await store_case.store.ping()
    assert await store_case.store.get("anything") is None


# Scripts: one program, the same answer on both backends


def _push(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    """Keep the largest value seen; reply with the old maximum and the key's field count."""
    old = ops.hget(keys[0], b"max")
    if old is None or int(args[0]) > int(old):
        ops.hset(keys[0], {b"max": args[0]})
    ops.hincrby(keys[0], b"seen", 1)
    ops.pexpire(keys[0], int(args[1]))
    return [old, ops.hexists(keys[0], b"max"), int(ops.pttl(keys[0]) > 0)]


PUSH = Script(
    "push_max",
    """
local old = redis.call('HGET', KEYS[1], 'max')
if (not old) or tonumber(ARGV[1]) > tonumber(old) then
  redis.call('HSET', KEYS[1], 'max', ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'seen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {old or false, redis.call('HEXISTS', KEYS[1], 'max'), redis.call('PTTL', KEYS[1]) > 0}
""",
    _push,
)


async def test_a_script_gives_the_same_answers_on_every_backend(store_case: StoreCase) -> None:
    store = store_case.store.namespaced("scripts")
    replies = [await store.run(PUSH, ["m"], [n, 60_000]) for n in (5, 3, 9)]
    # Lua's false (old is nil) and true become nil and 1 on Redis; the twin says so too.
    assert replies == [[None, 1, 1], [b"5", 1, 1], [b"5", 1, 1]]
    assert await store.hash_get_all("m") == {"max": b"9", "seen": b"3"}
    ttl = await store.ttl("m")
    assert ttl is not None
    assert 0 < ttl <= 60


@pytest.mark.parametrize("bad", [True, None, [1]])
async def test_a_script_argument_must_be_bytes_text_or_a_number(
    store_case: StoreCase, bad: object
) -> None:
    with pytest.raises(TypeError):
        await store_case.store.run(PUSH, ["m"], [bad, 60_000])  # type: ignore[list-item]
    assert await store_case.store.hash_get_all("m") == {}


def _log(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    """Add a member at a score, drop those at or below a bound; report what is left."""
    key, member, score, drop_upto = keys[0], args[0], float(args[1]), float(args[2])
    added = ops.zadd(key, score, member, nx=args[3] == b"1")
    dropped = ops.zremrangebyscore_upto(key, drop_upto)
    first = ops.zfirst(key)
    found = ops.zscore(key, member)
    return [
        added, dropped, ops.zcard(key),
        first[0] if first else None, int(found) if found is not None else None,
    ]  # fmt: skip


LOG = Script(
    "sorted_log",
    """
local added
if ARGV[4] == '1' then
  added = redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
else
  added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local found = redis.call('ZSCORE', KEYS[1], ARGV[1])
return {added, dropped, redis.call('ZCARD', KEYS[1]),
        first or false, found and math.floor(tonumber(found)) or false}
""",
    _log,
)


async def test_sorted_sets_answer_alike_on_every_backend(store_case: StoreCase) -> None:
    store = store_case.store.namespaced("zsets")
    steps = [
        (b"a", 10, 0, 0), (b"b", 20, 0, 0), (b"c", 15, 0, 0),  # kept in score order
        (b"a", 30, 0, 0),  # a member added again moves
        (b"d", 5, 0, 1), (b"d", 99, 0, 1),  # NX keeps the first score
        (b"e", 40, 15, 0),  # drops d (5) and c (15)
        (b"f", 50, 100, 0),  # drops everything: the set goes with its last member
    ]  # fmt: skip
    replies = [
        await store.run(LOG, ["log"], [member, score, upto, nx])
        for member, score, upto, nx in steps
    ]
    assert replies == [
        [1, 0, 1, b"a", 10], [1, 0, 2, b"a", 20], [1, 0, 3, b"a", 15],
        [0, 0, 3, b"c", 30], [1, 0, 4, b"d", 5], [0, 0, 4, b"d", 5],
        [1, 2, 3, b"b", 40], [1, 4, 0, None, None],
    ]  # fmt: skip
    assert await store.ttl("log") is None


async def test_a_long_log_drops_its_oldest_members_in_order(store_case: StoreCase) -> None:
    store = store_case.store.namespaced("zsets")
    for n in range(300):
        await store.run(LOG, ["long"], [f"m{n}", n, -1, 0])
    reply = await store.run(LOG, ["long"], ["last", 1000, 199.5, 0])
    assert reply == [1, 200, 101, b"m200", 1000]
