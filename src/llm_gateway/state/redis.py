"""The shared store: Redis through one blocking pool, shared by every replica.

One :class:`RedisStore` per process owns one ``BlockingConnectionPool``; its
namespaced views share it. The pool blocks (up to ``timeout_s``) for a free
connection instead of failing a burst with "too many connections", and every
socket has a timeout, so a Redis that hangs becomes :class:`StoreUnavailable`
instead of a request that never ends.

Scripts run by digest (``EVALSHA``). A server that does not know the digest
(a restart, a failover, ``SCRIPT FLUSH``) answers ``NOSCRIPT``; the script is
then loaded (``SCRIPT LOAD``) and run again, once.

Scripts are the hot path (every request's rate limits and budgets), so they
share round trips: while one batch of scripts is on its way to Redis, the
scripts asked for meanwhile wait, and go together in one pipeline as soon as
it is back (a group commit; :class:`_ScriptBatches`). One request alone waits
for nothing; under load, a round trip and its parsing serve many requests,
which halves the client's CPU per script. Each script stays atomic on its
own; a pipeline is not a transaction, and nothing here needs it to be.
"""

from __future__ import annotations

import asyncio
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


_Params = list[Any]  # the keys, then the encoded arguments, as EVALSHA takes them
_Waiting = tuple[Script, int, _Params, "asyncio.Future[Reply]"]


class _ScriptBatches:
    """Scripts asked for while a batch is in flight go together in the next one."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiting: list[_Waiting] = []
        self._sending = False

    async def run(self, script: Script, nkeys: int, params: _Params) -> Reply:
        if self._sending:  # a batch is on its way: join the next one
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._waiting.append((script, nkeys, params, future))
            return await future
        self._sending = True  # nothing in flight: go now, from this task
        try:
            reply = await self._one(script, nkeys, params)
        finally:
            self._next()
        if isinstance(reply, RedisError):
            raise _failed(reply) from reply
        result: Reply = reply
        return result

    def _next(self) -> None:
        """Send what waited meanwhile, in a task of its own; or stand idle."""
        if self._waiting:
            asyncio.get_running_loop().create_task(self._send_waiting())
        else:
            self._sending = False

    async def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            await self._send(batch)
        finally:
            self._next()

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            replies = await self._replies(batch)
        except Exception as exc:  # noqa: BLE001 (handed to every caller of the batch)
            replies = [exc] * len(batch)
        except BaseException:  # cancelled (the loop is closing): nobody is left waiting
            for *_, future in batch:
                future.cancel()
            raise
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller gave up (a timeout, a cancelled request)
                continue
            if isinstance(reply, RedisError):
                future.set_exception(_failed(reply))
            elif isinstance(reply, Exception):
                future.set_exception(StoreError(f"the script failed ({type(reply).__name__})"))
            else:
                future.set_result(reply)

    async def _replies(self, batch: list[_Waiting]) -> list[Any]:
        if len(batch) == 1:
            script, nkeys, params, _ = batch[0]
            return [await self._one(script, nkeys, params)]
        pipe = self._client.pipeline(transaction=False)
        for script, nkeys, params, _ in batch:
            pipe.evalsha(script.sha, nkeys, *params)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for i, (script, nkeys, params, _) in enumerate(batch):
            if isinstance(replies[i], NoScriptError):
                replies[i] = await self._one(script, nkeys, params)
        return replies

    async def _one(self, script: Script, nkeys: int, params: _Params) -> Any:
        """One script's reply, or the Redis error it met (returned, as a pipeline does)."""
        try:
            return await self._client.evalsha(script.sha, nkeys, *params)
        except NoScriptError:
            await self._client.script_load(script.lua)
            return await self._client.evalsha(script.sha, nkeys, *params)
        except RedisError as exc:
            return exc


class RedisStore(Store):
    """The Redis :class:`Store`. Build it with :meth:`from_url`; values and replies are bytes."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        owns_client: bool,
        scripts: _ScriptBatches | None = None,
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the state store needs a client without decode_responses")
        super().__init__(prefix)
        self._client = client
        self._owns_client = owns_client
        self._scripts = scripts or _ScriptBatches(client)  # shared by the namespaced views

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
        params: _Params = [*(self.key(key) for key in keys), *(encode_arg(arg) for arg in args)]
        return await self._scripts.run(script, len(keys), params)

    def namespaced(self, namespace: str) -> RedisStore:
        return RedisStore(
            self._client,
            prefix=self._child_prefix(namespace),
            owns_client=False,
            scripts=self._scripts,
        )

    async def ping(self) -> None:
        await _call(self._client.ping())

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
