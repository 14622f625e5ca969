"""The shared vault: one Redis hash per conversation, agreed on by every replica.

Layout of ``{prefix}{conversation}`` (a hash, expiring ``ttl`` after its last write)::

    n:{LABEL}   the last number given to the label      (HINCRBY, atomic)
    f:{fp}      the token of the value with fingerprint fp (keyed HMAC, never the value)
    t:{token}   base64(nonce || AES-GCM ciphertext), bound to conversation and token
    count       how many tokens the conversation holds   (the cap)

Numbering runs in one Lua script per batch, so concurrent requests of one
conversation, on any replica, never share a number and never give one value
two tokens. The ciphertext needs the token as associated data, so it is
written in a second round trip, only for tokens that lack one (new tokens, or
a writer that died between the two steps).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from llm_gateway.dlp.vault import (
    DEFAULT_MAX_TOKENS_PER_CONVERSATION,
    DEFAULT_TTL_SECONDS,
    VaultSession,
    open_entries,
    token_label,
)
from llm_gateway.dlp.vault_crypto import (
    ConversationCipher,
    VaultCipher,
    VaultFull,
    VaultUnavailable,
)

DEFAULT_PREFIX = "llmgw:vault:"

# KEYS[1] the conversation's hash; ARGV: ttl (ms), cap, then (fingerprint, label) pairs.
# Returns (token, needs_ciphertext) pairs; an empty token means the cap was reached.
_ASSIGN_TOKENS = """
local key = KEYS[1]
local cap = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local fp_field = 'f:' .. ARGV[i]
  local token = redis.call('HGET', key, fp_field)
  if token then
    out[#out + 1] = token
    out[#out + 1] = 1 - redis.call('HEXISTS', key, 't:' .. token)
  elseif tonumber(redis.call('HGET', key, 'count') or '0') >= cap then
    out[#out + 1] = ''
    out[#out + 1] = 0
  else
    redis.call('HINCRBY', key, 'count', 1)
    local n = redis.call('HINCRBY', key, 'n:' .. ARGV[i + 1], 1)
    token = '<' .. ARGV[i + 1] .. '_' .. n .. '>'
    redis.call('HSET', key, fp_field, token)
    out[#out + 1] = token
    out[#out + 1] = 1
  end
end
redis.call('PEXPIRE', key, ARGV[1])
return out
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisVault:
    """Conversations in Redis; works with clients with or without ``decode_responses``.

    A shared client should use a ``BlockingConnectionPool``: redis-py's default
    pool raises once 100 commands are in flight, which would turn a burst into
    :class:`VaultUnavailable` (and tokens into plain redaction markers).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        key: bytes,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        prefix: str = DEFAULT_PREFIX,
        max_tokens_per_conversation: int = DEFAULT_MAX_TOKENS_PER_CONVERSATION,
        owns_client: bool = False,
    ) -> None:
        self._cipher = VaultCipher(key)  # validates the key now, not on the first request
        self._client = client
        self.ttl_ms = max(1, math.ceil(ttl * 1000))
        self.prefix = prefix
        self.max_tokens = max_tokens_per_conversation
        self._owns_client = owns_client
        self._assign = client.register_script(_ASSIGN_TOKENS)

    @classmethod
    def from_url(
        cls,
        url: str,
        key: bytes,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        prefix: str = DEFAULT_PREFIX,
        max_tokens_per_conversation: int = DEFAULT_MAX_TOKENS_PER_CONVERSATION,
    ) -> RedisVault:
        """A vault with a client of its own, closed by :meth:`aclose`.

        The pool blocks (up to 5 s) for a free connection instead of failing a
        burst of concurrent requests with "too many connections".
        """
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=5)
        return cls(
            aioredis.Redis.from_pool(pool),
            key,
            ttl=ttl,
            prefix=prefix,
            max_tokens_per_conversation=max_tokens_per_conversation,
            owns_client=True,
        )

    def session(self, conversation: str) -> VaultSession:
        return _RedisSession(self, conversation, self._cipher.conversation(conversation))

    def redis_key(self, conversation: str) -> str:
        return self.prefix + conversation

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class _RedisSession(VaultSession):
    def __init__(self, vault: RedisVault, conversation: str, cipher: ConversationCipher):
        super().__init__(conversation)
        self._vault = vault
        self._cipher = cipher
        self._redis_key = vault.redis_key(conversation)

    async def tokens_for(self, items: Sequence[tuple[str, str]]) -> list[str]:
        if not items:
            return []
        vault = self._vault
        args: list[str | int] = [vault.ttl_ms, vault.max_tokens]
        labels_values = [(token_label(label), value) for label, value in items]
        for label, value in labels_values:
            args += (self._cipher.fingerprint(label, value), label)
        try:
            reply = await vault._assign(keys=[self._redis_key], args=args)
        except RedisError as exc:
            raise VaultUnavailable("the Redis vault did not answer") from exc
        tokens = [_text(raw) for raw in reply[0::2]]
        if "" in tokens:
            raise VaultFull("the conversation holds as many tokens as the vault allows")
        to_seal: dict[FieldT, EncodableT] = {
            f"t:{token}": self._cipher.seal(token, value)
            for token, needs, (_, value) in zip(tokens, reply[1::2], labels_values, strict=True)
            if int(needs)
        }
        if to_seal:
            await self._write(to_seal)
        return tokens

    async def _write(self, fields: Mapping[FieldT, EncodableT]) -> None:
        try:
            async with self._vault._client.pipeline(transaction=False) as pipe:
                pipe.hset(self._redis_key, mapping=fields)
                pipe.pexpire(self._redis_key, self._vault.ttl_ms)
                await pipe.execute()
        except RedisError as exc:
            raise VaultUnavailable("the Redis vault did not answer") from exc

    async def mapping(self) -> dict[str, str]:
        try:
            stored = await self._vault._client.hgetall(self._redis_key)
        except RedisError as exc:
            raise VaultUnavailable("the Redis vault did not answer") from exc
        sealed = ((_text(f)[2:], blob) for f, blob in stored.items() if _text(f).startswith("t:"))
        return open_entries(self._cipher, sealed)

    async def values(self, tokens: Iterable[str]) -> dict[str, str]:
        wanted = list(set(tokens))
        if not wanted:
            return {}
        try:
            stored = await self._vault._client.hmget(self._redis_key, [f"t:{t}" for t in wanted])
        except RedisError as exc:
            raise VaultUnavailable("the Redis vault did not answer") from exc
        found = ((t, blob) for t, blob in zip(wanted, stored, strict=True) if blob is not None)
        return open_entries(self._cipher, found)
