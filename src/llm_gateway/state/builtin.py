"""The store's own atomic operations, each a :class:`Script` with its Python twin.

Redis has no single command for "increment, and set an expiry if the key has
none" or "set if the value is still X"; done as two commands, a replica dying
in between leaves a counter that never expires or a lost transition. Each is
one script instead, and the memory store runs the twin, so both backends obey
the one definition the contract tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llm_gateway.state.script import Ops, Reply, Script

__all__ = ["COMPARE_AND_SET", "HASH_SET", "INCR", "INCR_FLOAT"]


def _counter(name: str, command: str, add: Callable[[Ops, str, bytes], Reply]) -> Script:
    """KEYS[1]; ARGV: amount, ttl (ms). ``command`` adds; the expiry is set only when the
    key has none (it was just created): a fixed window from the first increment."""
    lua = f"""
local n = redis.call('{command}', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""

    def twin(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
        n = add(ops, keys[0], args[0])
        if ops.pttl(keys[0]) == -1:
            ops.pexpire(keys[0], int(args[1]))
        return n

    return Script(name, lua, twin)


INCR = _counter("incr", "INCRBY", lambda ops, key, amount: ops.incrby(key, int(amount)))
# The reply is the new total as a string, as Redis gives it.
INCR_FLOAT = _counter(
    "incr_float", "INCRBYFLOAT", lambda ops, key, amount: ops.incrbyfloat(key, float(amount))
)

# KEYS[1]; ARGV: 1 if a value is expected (0: the key must be absent), the
# expected value, the new value, ttl (ms). Returns 1 if the new value was set.
_COMPARE_AND_SET_LUA = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
"""


def _compare_and_set(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    current = ops.get(keys[0])
    if args[0] == b"1":
        if current != args[1]:
            return 0
    elif current is not None:
        return 0
    ops.set(keys[0], args[2], px=int(args[3]))
    return 1


COMPARE_AND_SET = Script("compare_and_set", _COMPARE_AND_SET_LUA, _compare_and_set)

# KEYS[1] a hash; ARGV: ttl (ms), then field, value pairs. Fields and TTL in one step,
# so a hash never exists without its expiry.
_HASH_SET_LUA = """
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _hash_set(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    ops.hset(keys[0], dict(zip(args[1::2], args[2::2], strict=True)))
    ops.pexpire(keys[0], int(args[0]))
    return 1


HASH_SET = Script("hash_set", _HASH_SET_LUA, _hash_set)
