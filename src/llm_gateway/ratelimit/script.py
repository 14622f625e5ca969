"""The limiter's two atomic programs: check-and-count every scope at once, and settle budgets.

``ADMIT`` is one round trip per request for every scope, on Redis as in memory:

- each **rate** scope is a sliding log, a sorted set of the admitted requests
  scored by their time in ms; entries older than the window are dropped, and
  the scope is full when ``limit`` remain;
- each **budget** (tokens or micro-dollars this month) is a counter; the
  request's estimate is refused if it would take the counter past the limit;
- an optional **queue** (a sorted set of waiting requests scored by arrival)
  makes the wait first come, first served across replicas: while anyone is
  waiting, a newcomer queues behind them, and only the head may take a slot.

Either everything is counted (the request is admitted: its entry in every log,
its estimate on every budget) or nothing is. Every key gets an expiry: a log
the window's length, a budget its month's end plus a grace period, a queue the
longest wait.

KEYS: the rate logs, then the budgets, then the queue if any.
ARGV: now (ms), window (ms), member, rates, budgets, queue's scope index (1-based
among the rates; 0: none), queue's max wait (ms), queue's max size, budget TTL
(ms), peek (1: count nothing), then a limit per rate, then (limit, amount) per budget.

Reply: ``[verdict, index, wait_ms, count per rate..., used per budget...]`` with
verdict 0 admitted, 1 refused by the scope at ``index`` (rates first, then
budgets), 2 queued; ``wait_ms`` is how long until the refusing rate frees a
slot. Counts and uses are after this request's own.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_gateway.state.script import Ops, Reply, Script

__all__ = ["ADMIT", "ADMITTED", "LEAVE", "QUEUED", "REFUSED", "SETTLE"]

ADMITTED, REFUSED, QUEUED = 0, 1, 2
_FIXED = 10  # ARGV entries before the limits

_ADMIT_LUA = """
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local nr, nb = tonumber(ARGV[4]), tonumber(ARGV[5])
local qi, qwait, qsize = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local bttl, peek = tonumber(ARGV[9]), ARGV[10] == '1'
local counts, used = {}, {}
local verdict, index, wait = 0, 0, 0
for i = 1, nr do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if index == 0 and counts[i] >= tonumber(ARGV[10 + i]) then
    index = i
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if oldest[2] then wait = tonumber(oldest[2]) + window - now else wait = window end
  end
end
for j = 1, nb do
  local amount = tonumber(ARGV[10 + nr + 2 * j])
  used[j] = tonumber(redis.call('GET', KEYS[nr + j]) or '0')
  if index == 0 and used[j] + amount > tonumber(ARGV[9 + nr + 2 * j]) then
    index = nr + j
  end
end
if index > 0 then verdict = 1 end
if qi > 0 and not peek then
  local queue = KEYS[nr + nb + 1]
  redis.call('ZREMRANGEBYSCORE', queue, '-inf', now - qwait)
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  local behind = head and head ~= member
  if index == qi or (index == 0 and behind) then
    if redis.call('ZSCORE', queue, member) or redis.call('ZCARD', queue) < qsize then
      redis.call('ZADD', queue, 'NX', now, member)
      redis.call('PEXPIRE', queue, qwait)
      verdict = 2
      if index == 0 then index, wait = qi, 1 end
    elseif index == 0 then
      verdict, index, wait = 1, qi, 1
    end
  else
    redis.call('ZREM', queue, member)
  end
end
if verdict == 0 and not peek then
  for i = 1, nr do
    redis.call('ZADD', KEYS[i], now, member)
    redis.call('PEXPIRE', KEYS[i], window)
    counts[i] = counts[i] + 1
  end
  for j = 1, nb do
    local key = KEYS[nr + j]
    used[j] = redis.call('INCRBY', key, ARGV[10 + nr + 2 * j])
    if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, bttl) end
  end
end
local reply = {verdict, index, wait}
for i = 1, nr do reply[#reply + 1] = counts[i] end
for j = 1, nb do reply[#reply + 1] = used[j] end
return reply
"""


def _admit(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    now, window, member = int(args[0]), int(args[1]), args[2]
    nr, nb = int(args[3]), int(args[4])
    qi, peek = int(args[5]), args[9] == b"1"
    counts: list[int] = []
    used: list[int] = []
    index, wait = 0, 0
    for i in range(nr):
        ops.zremrangebyscore_upto(keys[i], now - window)
        counts.append(ops.zcard(keys[i]))
        if index == 0 and counts[i] >= int(args[_FIXED + i]):
            index = i + 1
            oldest = ops.zfirst(keys[i])
            wait = int(oldest[1]) + window - now if oldest else window
    for j in range(nb):
        limit, amount = int(args[_FIXED + nr + 2 * j]), int(args[_FIXED + nr + 2 * j + 1])
        used.append(int(ops.get(keys[nr + j]) or b"0"))
        if index == 0 and used[j] + amount > limit:
            index = nr + j + 1
    verdict = REFUSED if index > 0 else ADMITTED
    if qi > 0 and not peek:
        verdict, index, wait = _queue(ops, keys[nr + nb], args, verdict, index, wait)
    if verdict == ADMITTED and not peek:
        for i in range(nr):
            ops.zadd(keys[i], now, member)
            ops.pexpire(keys[i], window)
            counts[i] += 1
        for j in range(nb):
            key = keys[nr + j]
            used[j] = ops.incrby(key, int(args[_FIXED + nr + 2 * j + 1]))
            if ops.pttl(key) == -1:
                ops.pexpire(key, int(args[8]))
    return [verdict, index, wait, *counts, *used]


def _queue(
    ops: Ops, queue: str, args: Sequence[bytes], verdict: int, index: int, wait: int
) -> tuple[int, int, int]:
    """The queue's part of :func:`_admit`: wait behind those who came first."""
    now, member = int(args[0]), args[2]
    qi, qwait, qsize = int(args[5]), int(args[6]), int(args[7])
    ops.zremrangebyscore_upto(queue, now - qwait)
    head = ops.zfirst(queue)
    behind = head is not None and head[0] != member
    if index == qi or (index == 0 and behind):
        if ops.zscore(queue, member) is not None or ops.zcard(queue) < qsize:
            ops.zadd(queue, now, member, nx=True)
            ops.pexpire(queue, qwait)
            return (QUEUED, qi, 1) if index == 0 else (QUEUED, index, wait)
        if index == 0:  # a full queue: a newcomer may not pass those waiting
            return REFUSED, qi, 1
        return verdict, index, wait
    ops.zrem(queue, member)
    return verdict, index, wait


ADMIT = Script("ratelimit_admit", _ADMIT_LUA, _admit)

# KEYS: budgets; ARGV: a change per budget (the real use minus the reservation).
# A key that expired meanwhile (a month rolled over) is not re-created.
_SETTLE_LUA = """
for i = 1, #KEYS do
  if ARGV[i] ~= '0' and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return #KEYS
"""


def _settle(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    for key, change in zip(keys, args, strict=True):
        if change != b"0" and ops.pttl(key) != -2:
            ops.incrby(key, int(change))
    return len(keys)


SETTLE = Script("ratelimit_settle", _SETTLE_LUA, _settle)

# KEYS[1] a queue; ARGV[1] a member that stops waiting (gave up, or went away).
_LEAVE_LUA = "return redis.call('ZREM', KEYS[1], ARGV[1])"


def _leave(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    return ops.zrem(keys[0], args[0])


LEAVE = Script("ratelimit_leave", _LEAVE_LUA, _leave)
