"""The vault's one atomic step: give each value of a batch its token, numbering new ones.

A :class:`~llm_gateway.state.Script`: Lua for Redis, a line-for-line Python
twin for the memory store. See :mod:`llm_gateway.dlp.vault` for the layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_gateway.state import Ops, Reply, Script

__all__ = ["ASSIGN_TOKENS"]

# KEYS[1] the conversation's hash; ARGV: ttl (ms), cap, then (fingerprint, label) pairs.
# Returns (token, needs_ciphertext) pairs; an empty token means the cap was reached.
_ASSIGN_TOKENS_LUA = """
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


def _assign_tokens(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    key = keys[0]
    cap = int(args[1])
    out: list[Reply] = []
    for i in range(2, len(args), 2):
        fp_field = b"f:" + args[i]
        token = ops.hget(key, fp_field)
        if token is not None:
            out += (token, 1 - ops.hexists(key, b"t:" + token))
        elif int(ops.hget(key, b"count") or b"0") >= cap:
            out += (b"", 0)
        else:
            ops.hincrby(key, b"count", 1)
            n = ops.hincrby(key, b"n:" + args[i + 1], 1)
            token = b"<" + args[i + 1] + b"_" + str(n).encode() + b">"
            ops.hset(key, {fp_field: token})
            out += (token, 1)
    ops.pexpire(key, int(args[0]))
    return out


ASSIGN_TOKENS = Script("dlp_vault_assign_tokens", _ASSIGN_TOKENS_LUA, _assign_tokens)
