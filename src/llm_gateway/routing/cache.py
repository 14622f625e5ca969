"""Stale-if-error: the last good answer to the same request, served only when every model fails.

An answer is kept, per tenant, under a digest of the request as it left the
gateway (the name asked for, the messages and tools after inbound DLP, the
sampling options) and the policy's revision. It is read only when every
attempt has failed (or no model could be tried), so it never replaces a live
answer. By then authentication, the policy, the limits and inbound DLP have
run for this request, and the answer still passes outbound DLP on its way
out (this stage is inside the DLP stage), as a live answer does; a DLP rule
change needs no revision in the key for that reason. A policy change does:
an answer cached under an old policy is never served under a new one.

Bounds: each entry expires after ``ttl_seconds``; an answer larger than
``max_entry_bytes`` is not kept; a tenant keeps at most
``max_entries_per_tenant`` answers, the oldest evicted first (one atomic
script: the entry, and its place in the tenant's index, a sorted set).
Only whole JSON answers are kept; a cached answer is served to a streaming
request as a stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Sequence

import orjson

from llm_gateway.chat import ChatRequest, ChatResponse, ToolCall, Usage
from llm_gateway.config.routing import StaleIfError
from llm_gateway.state import Ops, Reply, Script, Store, StoreError

log = logging.getLogger(__name__)

_SAVE_LUA = """
local now, ttl, max = tonumber(ARGV[3]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('PEXPIRE', KEYS[2], ttl)
local evicted = 0
while redis.call('ZCARD', KEYS[2]) > max do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  redis.call('ZREM', KEYS[2], oldest)
  redis.call('DEL', KEYS[3] .. oldest)
  evicted = evicted + 1
end
return evicted
"""


def _save(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    entry, index, prefix = keys
    value, ttl, now, most, member = args[0], int(args[1]), int(args[2]), int(args[3]), args[4]
    ops.set(entry, value, px=ttl)
    ops.zremrangebyscore_upto(index, now - ttl)
    ops.zadd(index, now, member)
    ops.pexpire(index, ttl)
    evicted = 0
    while ops.zcard(index) > most:
        first = ops.zfirst(index)
        assert first is not None
        ops.zrem(index, first[0])
        ops.delete(prefix + first[0].decode())
        evicted += 1
    return evicted


#: KEYS: the entry, the tenant's index, the tenant's entry prefix (KEYS[3] .. member is
#: an entry: a key built in the script, which a single Redis allows).
#: ARGV: the answer, TTL (ms), now (ms), the tenant's most entries, the entry's digest.
SAVE = Script("stale_cache_save", _SAVE_LUA, _save)


class StaleCache:
    def __init__(self, store: Store, config: StaleIfError) -> None:
        self.store = store
        self.config = config
        self._saving: set[asyncio.Task[None]] = set()

    def key(self, chat: ChatRequest, *, requested: str, tenant: str | None,
            policy_revision: str) -> str:  # fmt: skip
        """The entry's key: the tenant's, then a digest of the request as it was sent."""
        request = dataclasses.asdict(chat)
        for volatile in ("model", "stream", "include_usage", "user"):
            del request[volatile]
        digest = hashlib.sha256(
            orjson.dumps([requested, policy_revision, request], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()[:32]
        return f"{_tenant(tenant)}:{digest}"

    def save_soon(self, key: str, answer: ChatResponse, *, now_ms: int) -> None:
        """Keep ``answer`` in the background: a live answer never waits for the cache."""
        if answer.finish_reason == "error":
            return
        value = orjson.dumps(
            {
                "model": answer.model,
                "text": answer.text,
                "tool_calls": [dataclasses.asdict(c) for c in answer.tool_calls],
                "finish_reason": answer.finish_reason,
                "usage": dataclasses.asdict(answer.usage) if answer.usage else None,
            }
        )
        if len(value) > self.config.max_entry_bytes:
            return
        task = asyncio.get_running_loop().create_task(self._save(key, value, now_ms))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, key: str, value: bytes, now_ms: int) -> None:
        tenant, _, member = key.rpartition(":")
        ttl_ms = round(self.config.ttl_seconds * 1000)
        keys = [f"entry:{key}", f"index:{tenant}", f"entry:{tenant}:"]
        try:
            await self.store.run(
                SAVE, keys, [value, ttl_ms, now_ms, self.config.max_entries_per_tenant, member]
            )
        except StoreError:
            log.warning("stale-if-error: an answer was not kept (the state store failed)")

    async def load(self, key: str) -> ChatResponse | None:
        try:
            raw = await self.store.get(f"entry:{key}")
        except StoreError:
            log.warning("stale-if-error: no cached answer (the state store failed)")
            return None
        if raw is None:
            return None
        kept = orjson.loads(raw)
        usage = kept["usage"]
        return ChatResponse(
            model=kept["model"],
            text=kept["text"],
            tool_calls=[ToolCall(**c) for c in kept["tool_calls"]],
            finish_reason=kept["finish_reason"],
            usage=Usage(**usage) if usage else None,
        )

    async def settled(self) -> None:
        """Until the answers being kept are kept (for tests and shutdown)."""
        while self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)


def _tenant(tenant: str | None) -> str:
    """A tenant's part of a key: its digest, so that no tenant name can reach another's keys."""
    return hashlib.blake2b((tenant or "").encode(), digest_size=8).hexdigest()
