"""A circuit breaker per model, on the state store, so every replica sees the same circuit.

Each model's breaker is one hash in the store (namespace ``breaker``):

- **closed**: calls pass; each result joins a count-based sliding window of
  the last ``window_size`` calls. Once the window holds ``minimum_calls``,
  a failure rate of ``failure_rate_threshold`` percent or more opens it;
- **open**: calls are refused for ``wait_duration_s``; results of calls
  admitted earlier and still arriving are ignored;
- **half-open**: the first call after the wait moves it here; exactly
  ``permitted_calls_in_half_open`` trial calls are admitted in total, over
  every replica, because admission is one atomic script. When all of them
  succeed it closes with an empty window; when any fails it opens again.
  Trials that never report (a replica died mid-call) are written off after
  another ``wait_duration_s`` and a new round of trials begins.

Every change runs in one script (:data:`ADMIT`, :data:`RECORD`), so two
replicas cannot both make the same transition: each transition is reported by
exactly one call, which logs it (logger ``llm_gateway.routing.breaker``) and
hands it to ``on_transition`` for the metrics. The time is the breaker's own
``clock`` (wall-clock seconds, which replicas share within NTP's accuracy),
passed to the scripts, so tests control it on Redis as in memory.

Cost per request: :meth:`Breaker.admit` answers from this process's view of
the circuit, refreshed by every reply, while that view is younger than
``view_ttl_s``: closed means admit, open (and still waiting) means refuse. So a
circuit opened by another replica is seen here within ``view_ttl_s`` (or at
this replica's next result); half-open always asks the store. ``view_ttl_s=0``
asks the store every time.

:meth:`Breaker.record` sends a failure at once. A success while this process
sees the circuit closed cannot change its state, so successes are counted here
and go to the store together, ``flush_s`` after the first of them, with the
next failure (ahead of it, in order), or once a window's worth has gathered,
whichever comes first: one round trip per interval and model instead of one
per call, and every reply refreshes the view. The store's window thus lags this
process's successes by at most ``flush_s``; a failure never waits. Successes
not yet sent when the process stops are lost, which only makes the window read
a little more failed. ``flush_s=0`` sends every result at once.

A store that fails (or does not answer within ``timeout_s``) fails open: the
call is admitted, its result is not counted, and the trouble is logged once
per 30 seconds. A breaker must never be the reason a healthy model is not
called.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from llm_gateway.state import Arg, Ops, Reply, Script, Store, StoreError
from llm_gateway.state.store import ttl_ms

__all__ = [
    "ADMIT",
    "RECORD",
    "STATE_TTL_S",
    "Breaker",
    "BreakerRules",
    "BreakerState",
    "BreakerStatus",
    "Transition",
]

log = logging.getLogger(__name__)

STATE_TTL_S = 3600.0
"""A breaker untouched for this long is forgotten (it starts closed, with an empty window):
an hour without a single call says nothing about the model any more. The TTL is at
least twice the wait, so an open circuit never expires while it waits."""
_QUIET_S = 30.0  # store trouble is logged at most this often
T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# The scripts speak in small integers: a state's index here.
_STATES = (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN)


@dataclass(frozen=True, slots=True)
class BreakerRules:
    """When a model's circuit opens and how it closes again (the routing file's
    ``circuit_breaker`` section, plus the window, which the file does not name)."""

    failure_rate_threshold: float = 50.0  # percent of the window's calls
    wait_duration_s: float = 60.0
    permitted_calls_in_half_open: int = 3
    window_size: int = 20
    minimum_calls: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate_threshold <= 100:
            raise ValueError("failure_rate_threshold must be a percentage in (0, 100]")
        if not (math.isfinite(self.wait_duration_s) and self.wait_duration_s > 0):
            raise ValueError("wait_duration_s must be a positive number of seconds")
        if self.permitted_calls_in_half_open < 1:
            raise ValueError("permitted_calls_in_half_open must be at least 1")
        if not 1 <= self.minimum_calls <= self.window_size:
            raise ValueError("minimum_calls must be between 1 and window_size")


@dataclass(frozen=True, slots=True)
class Transition:
    """A circuit changed state: which model's, from what to what, and when (on the clock)."""

    name: str
    old: BreakerState
    new: BreakerState
    at: float


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A circuit as the health endpoint shows it. An open circuit whose wait is over still
    reads open until its next call is admitted (that call makes it half-open)."""

    state: BreakerState
    calls: int  # in the window (closed only)
    failures: int
    retry_at: float | None  # when an open circuit admits a trial call, on the clock


@dataclass(slots=True)
class _View:
    """This process's last sight of a circuit."""

    state: BreakerState
    until: float  # an open circuit's end of wait, seconds
    seen_at: float


# --- the scripts --------------------------------------------------------------
#
# KEYS[1] is the model's hash: state (closed|open|half_open; absent: closed), until
# (ms: the end of the wait, or of a half-open round), window (one letter per call,
# oldest first: s success, f failure), admitted and passed (the round's trials).

# ARGV: now (ms), the end of a wait that would start now (ms), permitted trials, TTL (ms).
# Reply: {state, previous state, until (ms), admitted 1|0}.
_ADMIT_LUA = """
local key, now = KEYS[1], tonumber(ARGV[1])
local state = redis.call('HGET', key, 'state') or 'closed'
if state == 'closed' then return {0, 0, 0, 1} end
local until_ms = tonumber(redis.call('HGET', key, 'until') or '0')
if state == 'open' then
  if now < until_ms then return {1, 1, until_ms, 0} end
  redis.call('HSET', key, 'state', 'half_open', 'until', ARGV[2], 'admitted', '1', 'passed', '0')
  redis.call('PEXPIRE', key, ARGV[4])
  return {2, 1, tonumber(ARGV[2]), 1}
end
if tonumber(redis.call('HGET', key, 'admitted') or '0') < tonumber(ARGV[3]) then
  redis.call('HINCRBY', key, 'admitted', 1)
  redis.call('PEXPIRE', key, ARGV[4])
  return {2, 2, until_ms, 1}
end
if now >= until_ms then
  redis.call('HSET', key, 'until', ARGV[2], 'admitted', '1', 'passed', '0')
  redis.call('PEXPIRE', key, ARGV[4])
  return {2, 2, tonumber(ARGV[2]), 1}
end
return {2, 2, until_ms, 0}
"""


def _admit(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    key, now = keys[0], int(args[0])
    state = ops.hget(key, b"state") or b"closed"
    if state == b"closed":
        return [0, 0, 0, 1]
    until_ms = int(ops.hget(key, b"until") or b"0")
    if state == b"open":
        if now < until_ms:
            return [1, 1, until_ms, 0]
        ops.hset(
            key, {b"state": b"half_open", b"until": args[1], b"admitted": b"1", b"passed": b"0"}
        )
        ops.pexpire(key, int(args[3]))
        return [2, 1, int(args[1]), 1]
    if int(ops.hget(key, b"admitted") or b"0") < int(args[2]):
        ops.hincrby(key, b"admitted", 1)
        ops.pexpire(key, int(args[3]))
        return [2, 2, until_ms, 1]
    if now >= until_ms:
        ops.hset(key, {b"until": args[1], b"admitted": b"1", b"passed": b"0"})
        ops.pexpire(key, int(args[3]))
        return [2, 2, int(args[1]), 1]
    return [2, 2, until_ms, 0]


ADMIT = Script("breaker_admit", _ADMIT_LUA, _admit)

# ARGV: the results, oldest first (one letter per call: s success, f failure), window
# size, minimum calls, threshold (%), the end of a wait that would start now (ms),
# permitted trials, TTL (ms). Reply: {state, previous state, until (ms)}: the state after
# the last result, and the state before the first.
#
# The results go through the states one by one, as separate calls would: a closed window
# that opens ignores the rest (the circuit is open), a half-open round that closes starts
# a new window with the rest.
_RECORD_LUA = """
local key, results = KEYS[1], ARGV[1]
local state = redis.call('HGET', key, 'state') or 'closed'
local index = {closed = 0, open = 1, half_open = 2}
local first = index[state]
local window = redis.call('HGET', key, 'window') or ''
local size = tonumber(ARGV[2])
local written, rewindowed = false, false
for i = 1, #results do
  local ok = string.sub(results, i, i) == 's'
  if state == 'open' then break end
  if state == 'half_open' then
    if not ok then
      redis.call('HSET', key, 'state', 'open', 'until', ARGV[5])
      state = 'open'
    elseif redis.call('HINCRBY', key, 'passed', 1) >= tonumber(ARGV[6]) then
      redis.call('HSET', key, 'state', 'closed', 'until', '0', 'admitted', '0', 'passed', '0')
      state, window, rewindowed = 'closed', '', true
    end
    written = true
  else
    window = window .. (ok and 's' or 'f')
    if #window > size then window = string.sub(window, -size) end
    local _, failures = string.gsub(window, 'f', '')
    if #window >= tonumber(ARGV[3]) and failures * 100 >= tonumber(ARGV[4]) * #window then
      redis.call('HSET', key, 'state', 'open', 'until', ARGV[5])
      state, window = 'open', ''
    end
    written, rewindowed = true, true
  end
end
if rewindowed then redis.call('HSET', key, 'window', window) end
if written then redis.call('PEXPIRE', key, ARGV[7]) end
local until_ms = 0
if state ~= 'closed' then until_ms = tonumber(redis.call('HGET', key, 'until') or '0') end
return {index[state], first, until_ms}
"""


def _record(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    key, results = keys[0], args[0]
    names = {b"closed": 0, b"open": 1, b"half_open": 2}
    state = ops.hget(key, b"state") or b"closed"
    first = names[state]
    window = ops.hget(key, b"window") or b""
    size, written, rewindowed = int(args[1]), False, False
    for letter in results:
        ok = letter == ord("s")
        if state == b"open":
            break
        if state == b"half_open":
            if not ok:
                ops.hset(key, {b"state": b"open", b"until": args[4]})
                state = b"open"
            elif ops.hincrby(key, b"passed", 1) >= int(args[5]):
                closed = {b"state": b"closed", b"until": b"0", b"admitted": b"0", b"passed": b"0"}
                ops.hset(key, closed)
                state, window, rewindowed = b"closed", b"", True
        else:
            window = (window + (b"s" if ok else b"f"))[-size:]
            failures = window.count(b"f")
            if len(window) >= int(args[2]) and failures * 100 >= float(args[3]) * len(window):
                ops.hset(key, {b"state": b"open", b"until": args[4]})
                state, window = b"open", b""
            rewindowed = True
        written = True
    if rewindowed:
        ops.hset(key, {b"window": window})
    if written:
        ops.pexpire(key, int(args[6]))
    until_ms = int(ops.hget(key, b"until") or b"0") if state != b"closed" else 0
    return [names[state], first, until_ms]


RECORD = Script("breaker_record", _RECORD_LUA, _record)


# --- the breaker ----------------------------------------------------------------


class Breaker:
    """Every model's circuit, on one store; one instance per process.

    ``on_transition`` is called with each :class:`Transition` this process
    causes (it must not raise); :meth:`record` also returns the one it caused.
    """

    def __init__(
        self,
        store: Store,
        rules: BreakerRules | None = None,
        *,
        view_ttl_s: float = 1.0,
        flush_s: float = 0.1,
        clock: Callable[[], float] = time.time,
        on_transition: Callable[[Transition], None] | None = None,
        timeout_s: float = 0.5,
    ) -> None:
        self.store = store.namespaced("breaker")
        self.rules = rules or BreakerRules()
        self.view_ttl_s = view_ttl_s
        self.flush_s = flush_s
        self.clock = clock
        self.on_transition = on_transition
        self.timeout_s = timeout_s
        self._ttl_ms = ttl_ms(max(STATE_TTL_S, 2 * self.rules.wait_duration_s))
        self._wait_ms = math.ceil(self.rules.wait_duration_s * 1000)
        self._views: dict[str, _View] = {}
        self._successes: dict[str, int] = {}  # counted here, not yet sent, by model
        self._flushes: set[asyncio.Task[None]] = set()
        self._quiet_until = 0.0

    async def admit(self, name: str) -> bool:
        """May a call to ``name`` go ahead now? False only while its circuit refuses it.

        A call admitted here must be followed by :meth:`record` with its result,
        or a half-open trial is held until it is written off.
        """
        now = self.clock()
        view = self._views.get(name)
        if view is not None and now - view.seen_at < self.view_ttl_s:
            if view.state is BreakerState.CLOSED:
                return True
            if view.state is BreakerState.OPEN and now < view.until:
                return False
        now_ms = _ms(now)
        args = [now_ms, now_ms + self._wait_ms, self.rules.permitted_calls_in_half_open]
        reply = await self._run(ADMIT, name, [*args, self._ttl_ms], 4)
        if reply is None:
            return True  # the store failed: fail open
        state, previous, until_ms, admitted = reply
        self._see(name, state, until_ms, now)
        self._transition(name, previous, state, now)
        return admitted == 1

    async def record(self, name: str, ok: bool) -> Transition | None:
        """Count a call's result; the transition it caused, if any.

        ``ok`` is False for the failures that say the model is unwell (the
        retryable ones: connection errors, timeouts, 429, 5xx, malformed
        answers). A caller's own 4xx is the model answering: record it as ok.
        A success on a circuit this process sees closed is sent later, with
        others (see the module's docstring): it causes no transition.
        """
        if ok and self._holds_success(name):
            return None
        results = "s" * self._successes.pop(name, 0) + ("s" if ok else "f")
        return await self._send(name, results)

    def _holds_success(self, name: str) -> bool:
        """Keep a success back for the next round trip, if the circuit is closed here."""
        if self.flush_s <= 0:
            return False
        view = self._views.get(name)
        if view is None or view.state is not BreakerState.CLOSED:
            return False
        if self.clock() - view.seen_at >= self.view_ttl_s:
            return False
        held = self._successes.get(name, 0) + 1
        if held >= self.rules.window_size:
            return False  # a window's worth: send them now, with this one
        self._successes[name] = held
        if held == 1:
            asyncio.get_running_loop().call_later(self.flush_s, self._flush_soon, name)
        return True

    def _flush_soon(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._flush(name))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, name: str) -> None:
        held = self._successes.pop(name, 0)
        if held:
            await self._send(name, "s" * held)

    async def _send(self, name: str, results: str) -> Transition | None:
        now = self.clock()
        rules = self.rules
        args: list[Arg] = [
            results, rules.window_size, rules.minimum_calls, float(rules.failure_rate_threshold),
            _ms(now) + self._wait_ms, rules.permitted_calls_in_half_open, self._ttl_ms,
        ]  # fmt: skip
        reply = await self._run(RECORD, name, args, 3)
        if reply is None:
            return None
        state, previous, until_ms = reply
        self._see(name, state, until_ms, now)
        return self._transition(name, previous, state, now)

    async def state(self, name: str) -> BreakerStatus | None:
        """The circuit of ``name`` as the store holds it; None when the store cannot say."""
        try:
            raw = await self._bounded(self.store.hash_get(name, ["state", "until", "window"]))
        except (StoreError, TimeoutError) as exc:
            self._trouble(exc, "circuit state unknown")
            return None
        state = BreakerState((raw[0] or b"closed").decode())
        window = raw[2] or b""
        retry_at = int(raw[1] or b"0") / 1000 if state is BreakerState.OPEN else None
        return BreakerStatus(state, len(window), window.count(b"f"), retry_at)

    # Internals

    def _see(self, name: str, state: int, until_ms: int, now: float) -> None:
        self._views[name] = _View(_STATES[state], until_ms / 1000, now)

    def _transition(self, name: str, previous: int, state: int, now: float) -> Transition | None:
        """Report a transition this process's script call made, exactly once."""
        if previous == state:
            return None
        change = Transition(name, _STATES[previous], _STATES[state], now)
        level = logging.WARNING if change.new is BreakerState.OPEN else logging.INFO
        log.log(level, "circuit breaker for model %s: %s -> %s", name, change.old, change.new)
        if self.on_transition is not None:
            self.on_transition(change)
        return change

    async def _run(
        self, script: Script, name: str, args: Sequence[Arg], size: int
    ) -> list[int] | None:
        """Run one of the scripts, whose reply is ``size`` integers; None if the store failed."""
        try:
            reply = await self._bounded(self.store.run(script, [name], args))
            return _integers(reply, size)
        except (StoreError, TimeoutError) as exc:
            self._trouble(exc, "admitting calls (failing open) and not counting results")
            return None

    async def _bounded(self, pending: Awaitable[T]) -> T:
        """Await a store call, giving up after ``timeout_s`` (the in-process store never waits)."""
        if self.store.never_waits:
            return await pending
        async with asyncio.timeout(self.timeout_s):
            return await pending

    def _trouble(self, exc: BaseException, consequence: str) -> None:
        """Log store trouble once per interval: a dead Redis must not flood the logs."""
        moment = time.monotonic()
        if moment >= self._quiet_until:
            self._quiet_until = moment + _QUIET_S
            problem = str(exc) or type(exc).__name__
            log.warning("circuit breakers: the state store failed (%s): %s", problem, consequence)


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


def _integers(reply: Reply, size: int) -> list[int]:
    """A script's reply: ``size`` integers, the first two a state and the previous state."""
    if isinstance(reply, list) and len(reply) == size:
        found = [x for x in reply if isinstance(x, int)]
        if len(found) == size and all(0 <= x < len(_STATES) for x in found[:2]):
            return found
    raise StoreError("a circuit breaker script answered in an unexpected shape")
