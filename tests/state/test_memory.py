"""The memory store's own promises: bounded, least recently used evicted, lazy expiry."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llm_gateway.state import MemoryStore, Ops, Reply, Script, StateBackend, open_store
from tests.state.cases import memory_case

HOUR = 3600.0


async def test_the_number_of_keys_is_bounded_least_recently_used_first() -> None:
    store = MemoryStore(max_entries=10)
    for n in range(10):
        await store.set(f"k{n}", b"v", ttl_s=HOUR)
    assert await store.get("k0") == b"v"  # touched: now the most recently used
    for n in range(10, 15):
        await store.set(f"k{n}", b"v", ttl_s=HOUR)
        assert len(store) <= 10
    assert len(store) == 10
    assert await store.get("k0") == b"v"
    assert [await store.get(f"k{n}") for n in range(1, 6)] == [None] * 5
    assert await store.get("k14") == b"v"


async def test_the_bytes_are_bounded_and_accounted_exactly() -> None:
    store = MemoryStore(max_bytes=5_000)
    for n in range(100):
        await store.set(f"k{n}", b"x" * 100, ttl_s=HOUR)
        assert store.size_bytes <= 5_000
    assert 0 < len(store) < 100
    assert await store.get("k99") == b"x" * 100
    await store.delete(*(f"k{n}" for n in range(100)))
    assert len(store) == 0
    assert store.size_bytes == 0


async def test_a_value_larger_than_the_bound_is_still_kept_alone() -> None:
    store = MemoryStore(max_bytes=1_000)
    await store.set("small", b"s", ttl_s=HOUR)
    await store.set("big", b"b" * 5_000, ttl_s=HOUR)
    assert await store.get("big") == b"b" * 5_000
    assert len(store) == 1


async def test_hash_growth_counts_towards_the_bound() -> None:
    store = MemoryStore(max_bytes=10_000)
    await store.hash_set("old", {"f": b"v"}, ttl_s=HOUR)
    for n in range(100):
        await store.hash_set("grows", {f"f{n}": b"v" * 50}, ttl_s=HOUR)
    assert await store.hash_get_all("old") == {}  # evicted to make room
    assert len(await store.hash_get_all("grows")) == 100


async def test_a_hashs_size_follows_its_fields_as_they_change() -> None:
    """Fields added, overwritten and deleted: the footprint is the same as the hash's
    built in one go, and nothing is left once every field is gone."""
    changed, built = MemoryStore(), MemoryStore()
    await changed.hash_set("h", {"a": b"1", "b": b"22"}, ttl_s=HOUR)
    await changed.hash_set("h", {"b": b"4444", "c": b"333"}, ttl_s=HOUR)
    assert await changed.hash_delete("h", "a", "missing") == 1
    await built.hash_set("h", {"b": b"4444", "c": b"333"}, ttl_s=HOUR)
    assert changed.size_bytes == built.size_bytes
    assert await changed.hash_delete("h", "b", "c") == 2
    assert (len(changed), changed.size_bytes) == (0, 0)


def _zadd(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    for i in range(0, len(args), 2):
        ops.zadd(keys[0], float(args[i]), args[i + 1])
    return None


def _zdrop(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    ops.zrem(keys[0], args[0])
    return ops.zremrangebyscore_upto(keys[0], float(args[1]))


# Memory-only programs (their Lua is never run here).
ZADD, ZDROP = Script("zadd", "", _zadd), Script("zdrop", "", _zdrop)


async def test_a_sorted_sets_size_follows_its_members_as_they_change() -> None:
    """Members added, re-scored and removed: the footprint is the same as the set's built
    in one go, and nothing is left once every member is gone (a rate log's life)."""
    changed, built = MemoryStore(), MemoryStore()
    await changed.run(ZADD, ["z"], [1, b"a", 2, b"bb", 3, b"ccc", 4, b"bb", 5, b"dddd"])
    assert await changed.run(ZDROP, ["z"], [b"ccc", 1]) == 1  # drops ccc, then a (score 1)
    await built.run(ZADD, ["z"], [4, b"bb", 5, b"dddd"])
    assert changed.size_bytes == built.size_bytes
    await changed.run(ZDROP, ["z"], [b"none", 10])
    assert (len(changed), changed.size_bytes) == (0, 0)


async def test_expired_keys_are_dropped_when_read_and_swept_on_writes() -> None:
    case = memory_case()
    store = case.store
    assert isinstance(store, MemoryStore)
    for n in range(50):
        await store.set(f"k{n}", b"v", ttl_s=60)
    await store.incr("n", ttl_s=60)
    await case.elapse(61)
    assert len(store) == 51  # no background task: nothing has looked yet
    assert await store.get("k0") is None
    assert len(store) == 50
    await store.set("new", b"v", ttl_s=60)
    assert len(store) == 1
    assert store.size_bytes > 0
    await case.elapse(61)
    assert await store.ttl("new") is None
    assert store.size_bytes == 0


async def test_namespaced_views_share_the_keys_and_the_bound() -> None:
    store = MemoryStore(max_entries=2)
    one, two = store.namespaced("one"), store.namespaced("two")
    await one.set("k", b"1", ttl_s=HOUR)
    await two.set("k", b"2", ttl_s=HOUR)
    await two.set("j", b"3", ttl_s=HOUR)
    assert len(store) == 2
    assert await one.get("k") is None  # evicted by the other namespace's writes
    assert await two.get("k") == b"2"


def test_a_store_needs_room() -> None:
    with pytest.raises(ValueError, match="room"):
        MemoryStore(max_entries=0)


async def test_open_store_builds_the_chosen_backend() -> None:
    store = open_store("memory", max_entries=3)
    assert isinstance(store, MemoryStore)
    for n in range(5):
        await store.set(str(n), b"v", ttl_s=HOUR)
    assert len(store) == 3
    with pytest.raises(ValueError, match="Redis URL"):
        open_store(StateBackend.REDIS, None)
    with pytest.raises(ValueError, match="nosuch"):
        open_store("nosuch")
