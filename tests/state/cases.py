"""One store under test, with a way to let its time pass: a fake clock or real sleeps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis

from llm_gateway.state import MemoryStore, Store
from llm_gateway.state.redis import RedisStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StoreCase:
    """``clock`` is set for the memory store; Redis keeps real time."""

    backend: str
    store: Store
    clock: FakeClock | None = None

    async def elapse(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    async def keys(self) -> list[str]:
        """Every key the store holds, without its prefix (the memory store has no prefix)."""
        if isinstance(self.store, MemoryStore):
            return list(self.store._data.entries)
        assert isinstance(self.store, RedisStore)
        prefix = self.store.prefix.encode()
        raw = [key async for key in self.store.client.scan_iter(match=prefix + b"*")]
        return sorted(key.removeprefix(prefix).decode() for key in raw)

    async def until_gone(self, key: str) -> None:
        """Wait for ``key`` to expire: at once on the fake clock, polling on Redis."""
        if self.clock is not None:
            remaining = await self.store.ttl(key)
            self.clock.now += (remaining or 0) + 0.001
        while await self.store.ttl(key) is not None:  # noqa: ASYNC110 (Redis sends no event)
            await asyncio.sleep(0.01)


def memory_case() -> StoreCase:
    clock = FakeClock()
    return StoreCase("memory", MemoryStore(clock=clock), clock)


@asynccontextmanager
async def redis_store(url: str) -> AsyncIterator[RedisStore]:
    """A store under a prefix of its own (tests share the server), whose keys are deleted after."""
    prefix = f"llmgw-test:{uuid.uuid4().hex}:"
    store = RedisStore.from_url(url, prefix=prefix)
    try:
        yield store
    finally:
        await store.aclose()
        cleaner = aioredis.Redis.from_url(url)
        try:
            keys = [key async for key in cleaner.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await cleaner.delete(*keys)
        finally:
            await cleaner.aclose()


class ClosedCount(MemoryStore):
    """A memory store that counts how often it is closed: who owns a store must close it
    once, and nobody else at all (closing a real store twice, or someone else's, is
    invisible otherwise: redis-py reconnects on demand)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()
