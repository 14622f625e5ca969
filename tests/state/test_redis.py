"""The Redis store's own promises: one pool, prefixed keys, scripts reloaded, errors mapped."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from llm_gateway.state import StateBackend, StoreUnavailable, open_store
from llm_gateway.state.builtin import INCR
from llm_gateway.state.redis import RedisStore
from tests.state.cases import redis_store

pytestmark = pytest.mark.redis
HOUR = 3600.0


async def test_keys_carry_the_prefix_and_have_a_ttl_in_redis(redis_server_url: str) -> None:
    async with redis_store(redis_server_url) as store:
        vault = store.namespaced("vault")
        await vault.set("k", b"v", ttl_s=HOUR)
        await vault.incr("n", ttl_s=HOUR)
        raw = store.client
        assert sorted(await raw.keys(store.prefix + "*")) == [
            f"{store.prefix}vault:k".encode(),
            f"{store.prefix}vault:n".encode(),
        ]
        assert 0 < await raw.pttl(f"{store.prefix}vault:n") <= HOUR * 1000


async def test_views_share_one_pool_and_only_the_root_closes_it(redis_server_url: str) -> None:
    async with redis_store(redis_server_url) as store:
        view = store.namespaced("a").namespaced("b")
        assert isinstance(view, RedisStore)
        assert view.prefix == store.prefix + "a:b:"
        assert view.client is store.client
        assert isinstance(store.client.connection_pool, aioredis.BlockingConnectionPool)
        await view.aclose()
        await store.ping()
        await view.set("k", b"v", ttl_s=HOUR)
        assert await store.get("a:b:k") == b"v"


async def test_a_script_is_loaded_again_after_script_flush(redis_server_url: str) -> None:
    async with redis_store(redis_server_url) as store:
        assert await store.incr("n", ttl_s=HOUR) == 1
        assert await store.client.script_exists(INCR.sha) == [True]
        await store.client.script_flush()
        assert await store.client.script_exists(INCR.sha) == [False]
        assert await store.incr("n", ttl_s=HOUR) == 2  # NOSCRIPT, loaded, run again
        assert await store.client.script_exists(INCR.sha) == [True]


async def test_the_factory_opens_redis_under_the_gateway_prefix(redis_server_url: str) -> None:
    store = open_store(StateBackend.REDIS, redis_server_url)
    try:
        assert isinstance(store, RedisStore)
        assert store.prefix == "llmgw:"
        await store.ping()
    finally:
        await store.aclose()


def test_a_decoding_client_is_refused() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStore(client, owns_client=False)


async def test_a_redis_that_is_down_is_store_unavailable() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.get("k")
        with pytest.raises(StoreUnavailable):
            await store.incr("k", ttl_s=HOUR)
        with pytest.raises(StoreUnavailable):
            await store.hash_get_all("k")
    finally:
        await store.aclose()
