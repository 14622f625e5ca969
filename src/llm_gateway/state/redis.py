"""The shared store: Redis through one blocking pool, shared by every replica.

One :class:`RedisStore` per process owns one ``BlockingConnectionPool``; its
namespaced views share it. The pool blocks (up to ``timeout_s``) for a free
connection instead of failing a burst with "too many connections", and every
socket has a timeout, so a Redis that hangs becomes :class:`StoreUnavailable`
instead of a request that never ends.

Scripts run by digest (``EVALSHA``). A server that does not know the digest
(a restart, a failover, ``SCRIPT FLUSH``) answers ``NOSCRIPT``; the script is
then loaded (``SCRIPT LOAD``) and run again, once.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llm_gateway.state.script import Arg, Reply, Script, encode_arg
from llm_gateway.state.store import Store, StoreError, StoreUnavailable, ttl_ms

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

DEFAULT_PREFIX = "llmgw:"


def _failed(exc: RedisError) -> StoreError:
    """The store's error for a Redis one; the message names the kind, never a key or value."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return StoreUnavailable(f"Redis did not answer ({type(exc).__name__})")
    return StoreError(f"Redis refused the operation ({type(exc).__name__})")


async def _call(pending: Awaitable[Any] | Any) -> Any:
    """Await a redis-py command, mapping its errors (its replies are loosely typed)."""
    try:
        return await pending if isinstance(pending, Awaitable) else pending
    except RedisError as exc:
        raise _failed(exc) from exc


class RedisStore(Store):
    """The Redis :class:`Store`. Build it with :meth:`from_url`; values and replies are bytes."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX, owns_client: bool
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the state store needs a client without decode_responses")
        super().__init__(prefix)
        self._client = client
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_connections: int = 64,
        timeout_s: float = 5.0,
        socket_timeout_s: float = 5.0,
    ) -> RedisStore:
        """A store with a pool of its own, closed by :meth:`aclose`. Connects lazily."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
        )
        return cls(aioredis.Redis.from_pool(pool), prefix=prefix, owns_client=True)

    @property
    def client(self) -> aioredis.Redis:
        """The shared client, for a test or an operation the interface lacks; keys unprefixed."""
        return self._client

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await _call(self._client.get(self.key(key)))
        return value

    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        await _call(self._client.set(self.key(key), value, px=ttl_ms(ttl_s)))

    async def set_if_absent(self, key: str, value: bytes, *, ttl_s: float) -> bool:
        done: bool | None = await _call(
            self._client.set(self.key(key), value, px=ttl_ms(ttl_s), nx=True)
        )
        return bool(done)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        removed: int = await _call(self._client.delete(*(self.key(key) for key in keys)))
        return removed

    async def ttl(self, key: str) -> float | None:
        ms: int = await _call(self._client.pttl(self.key(key)))
        if ms == -2:
            return None
        return math.inf if ms == -1 else ms / 1000

    async def expire(self, key: str, *, ttl_s: float) -> bool:
        return bool(await _call(self._client.pexpire(self.key(key), ttl_ms(ttl_s))))

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        stored: dict[bytes, bytes] = await _call(self._client.hgetall(self.key(key)))
        return {name.decode(): value for name, value in stored.items()}

    async def hash_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        if not fields:
            return []
        found: list[bytes | None] = await _call(self._client.hmget(self.key(key), list(fields)))
        return found

    async def hash_delete(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        removed: int = await _call(self._client.hdel(self.key(key), *fields))
        return removed

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        full = [self.key(key) for key in keys]
        params: list[Any] = [*full, *(encode_arg(arg) for arg in args)]
        try:
            try:
                reply: Reply = await self._client.evalsha(script.sha, len(full), *params)
            except NoScriptError:
                await self._client.script_load(script.lua)
                reply = await self._client.evalsha(script.sha, len(full), *params)
        except RedisError as exc:
            raise _failed(exc) from exc
        return reply

    def namespaced(self, namespace: str) -> RedisStore:
        return RedisStore(self._client, prefix=self._child_prefix(namespace), owns_client=False)

    async def ping(self) -> None:
        await _call(self._client.ping())

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
