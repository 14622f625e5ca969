"""The Redis store's own promises: one pool, prefixed keys, scripts reloaded, errors mapped."""

from __future__ import annotations

import asyncio

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


async def test_scripts_asked_for_together_share_round_trips_and_each_gets_its_reply(
    redis_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with redis_store(redis_server_url) as store:
        pipelines = 0
        make_pipeline = store.client.pipeline

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal pipelines
            pipelines += 1
            return make_pipeline(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store.client, "pipeline", counted)
        views = [store.namespaced("a"), store.namespaced("b")]  # one batch across views
        replies = await asyncio.gather(*(views[i % 2].incr("n", ttl_s=HOUR) for i in range(40)))
        assert sorted(replies) == sorted([*range(1, 21), *range(1, 21)])
        assert 0 < pipelines < 40
        assert await store.get("a:n") == await store.get("b:n") == b"20"


async def test_a_batch_recovers_from_script_flush_for_each_of_its_scripts(
    redis_server_url: str,
) -> None:
    async with redis_store(redis_server_url) as store:
        await store.incr("n", ttl_s=HOUR)
        await store.client.script_flush()
        replies = await asyncio.gather(*(store.incr("n", ttl_s=HOUR) for _ in range(10)))
        assert sorted(replies) == list(range(2, 12))


async def test_every_caller_of_a_failed_batch_gets_the_store_error() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", timeout_s=0.5, socket_timeout_s=0.5)
    try:
        results = await asyncio.gather(
            *(store.incr("n", ttl_s=HOUR) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
    finally:
        await store.aclose()
