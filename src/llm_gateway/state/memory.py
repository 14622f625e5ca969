"""The in-process store: one replica's state in a bounded dict, with lazy expiry.

No background task: an expired key is dropped when it is next touched, and
every write also drops the expired keys at the least recently used end (each
key is dropped once, so this is amortised constant time). Memory is bounded
twice, by a number of keys and by an estimate of their bytes; past either,
the least recently used keys are evicted. Evicting state is always safe here:
a limit window restarts, a vault conversation is forgotten (its tokens stay
tokens), a pending confirmation expires early.

Nothing in this module awaits: each public method (and each script twin) runs
to completion on the event loop before another task can see the data, which
is what makes them atomic.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from llm_gateway.state.script import Arg, Reply, Script, encode_arg
from llm_gateway.state.store import Store, StoreError, ttl_ms

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "MemoryStore"]

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Rough CPython cost of a key (its entry object and OrderedDict slot) and of a hash field.
_KEY_OVERHEAD = 200
_FIELD_OVERHEAD = 100


class _SortedSet:
    """A Redis sorted set: members with scores, kept in (score, member) order.

    A sliding window's log gains members at its end and loses them at its
    start, so the order is a list read from ``head``: dropping the oldest
    moves ``head`` instead of shifting the list, which is compacted once the
    dropped part is the larger (amortised constant time per member).
    """

    __slots__ = ("head", "order", "scores", "size")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: list[tuple[float, bytes]] = []
        self.head = 0
        self.size = 0  # the members' estimated bytes

    def add(self, member: bytes, score: float) -> int:
        old = self.scores.get(member)
        if old is not None:
            self.order.pop(bisect.bisect_left(self.order, (old, member), lo=self.head))
        else:
            self.size += _FIELD_OVERHEAD + len(member)
        self.scores[member] = score
        bisect.insort(self.order, (score, member), lo=self.head)
        return int(old is None)

    def remove(self, member: bytes) -> int:
        old = self.scores.pop(member, None)
        if old is None:
            return 0
        self.order.pop(bisect.bisect_left(self.order, (old, member), lo=self.head))
        self.size -= _FIELD_OVERHEAD + len(member)
        return 1

    def remove_upto(self, high: float) -> int:
        order, head = self.order, self.head
        end = bisect.bisect_right(order, high, lo=head, key=lambda pair: pair[0])
        for i in range(head, end):
            member = order[i][1]
            del self.scores[member]
            self.size -= _FIELD_OVERHEAD + len(member)
        self.head = end
        if end > 64 and end * 2 > len(order):
            del order[:end]
            self.head = 0
        return end - head

    def first(self) -> tuple[float, bytes] | None:
        return self.order[self.head] if self.head < len(self.order) else None


Value = bytes | dict[bytes, bytes] | _SortedSet


@dataclass(slots=True)
class _Entry:
    value: Value
    expires_at: float  # on the store's clock; math.inf for none
    size: int = 0


def _wrong_type() -> StoreError:
    return StoreError("WRONGTYPE: the key holds another kind of value")


class _Data:
    """The keys shared by a store and its namespaced views; implements :class:`Ops`."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float]) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a memory store needs room for at least one key")
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0

    # Bookkeeping

    def live(self, key: str) -> _Entry | None:
        """The entry if it has not expired, marked most recently used."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self.clock():
            self.drop(key)
            return None
        self.entries.move_to_end(key)
        return entry

    def drop(self, key: str) -> bool:
        entry = self.entries.pop(key, None)
        if entry is None:
            return False
        self.bytes -= entry.size
        return True

    def resize(self, entry: _Entry, size: int) -> None:
        self.bytes += size - entry.size
        entry.size = size

    def put(self, key: str, value: Value, expires_at: float) -> _Entry:
        self.drop(key)
        entry = _Entry(value, expires_at)
        self.entries[key] = entry
        self.resize(
            entry, _KEY_OVERHEAD + len(key) + (len(value) if isinstance(value, bytes) else 0)
        )
        return entry

    def settle(self) -> None:
        """After a write: drop expired keys at the cold end, then evict down to the bounds.

        The most recently used key is never evicted: whatever was just written
        survives, even when it alone is over the byte bound.
        """
        now = self.clock()
        entries = self.entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest].expires_at > now:
                break
            self.drop(oldest)
        while len(entries) > 1 and (len(entries) > self.max_entries or self.bytes > self.max_bytes):
            self.drop(next(iter(entries)))

    def _number(self, key: str) -> tuple[_Entry | None, bytes]:
        entry = self.live(key)
        if entry is None:
            return None, b"0"
        if not isinstance(entry.value, bytes):
            raise _wrong_type()
        return entry, entry.value

    def _store_number(self, key: str, entry: _Entry | None, text: bytes) -> None:
        if entry is None:
            self.put(key, text, math.inf)
        else:
            entry.value = text
            self.resize(entry, _KEY_OVERHEAD + len(key) + len(text))

    def hash(self, key: str, *, create: bool) -> dict[bytes, bytes] | None:
        entry = self.live(key)
        if entry is None:
            if not create:
                return None
            fresh: dict[bytes, bytes] = {}
            self.put(key, fresh, math.inf)
            return fresh
        if not isinstance(entry.value, dict):
            raise _wrong_type()
        return entry.value

    def sorted_set(self, key: str, *, create: bool) -> _SortedSet | None:
        entry = self.live(key)
        if entry is None:
            if not create:
                return None
            fresh = _SortedSet()
            self.put(key, fresh, math.inf)
            return fresh
        if not isinstance(entry.value, _SortedSet):
            raise _wrong_type()
        return entry.value

    def _shrink(self, key: str, remove: Callable[[_SortedSet], int]) -> int:
        """Remove members of a sorted set; it goes with its last member, as in Redis."""
        found = self.sorted_set(key, create=False)
        if found is None:
            return 0
        removed = remove(found)
        if not found.scores:
            self.drop(key)
        elif removed:
            self.resize(self.entries[key], _KEY_OVERHEAD + len(key) + found.size)
        return removed

    # Ops: the Redis commands of the same names

    def get(self, key: str) -> bytes | None:
        entry = self.live(key)
        if entry is None:
            return None
        if not isinstance(entry.value, bytes):
            raise _wrong_type()
        return entry.value

    def set(self, key: str, value: bytes, *, px: int) -> None:
        self.put(key, bytes(value), self.clock() + px / 1000)

    def delete(self, key: str) -> int:
        return int(self.live(key) is not None and self.drop(key))

    def pexpire(self, key: str, ms: int) -> int:
        entry = self.live(key)
        if entry is None:
            return 0
        entry.expires_at = self.clock() + ms / 1000
        return 1

    def pttl(self, key: str) -> int:
        entry = self.live(key)
        if entry is None:
            return -2
        if entry.expires_at == math.inf:
            return -1
        return max(0, round((entry.expires_at - self.clock()) * 1000))

    def incrby(self, key: str, amount: int) -> int:
        entry, text = self._number(key)
        try:
            total = int(text) + amount
        except ValueError:
            raise StoreError("ERR: the value is not an integer") from None
        self._store_number(key, entry, str(total).encode())
        return total

    def incrbyfloat(self, key: str, amount: float) -> bytes:
        entry, text = self._number(key)
        try:
            total = float(text) + amount
        except ValueError:
            raise StoreError("ERR: the value is not a number") from None
        if not math.isfinite(total):
            raise StoreError("ERR: increment would produce NaN or Infinity")
        reply = (str(int(total)) if total.is_integer() else repr(total)).encode()
        self._store_number(key, entry, reply)
        return reply

    def hget(self, key: str, field: bytes) -> bytes | None:
        found = self.hash(key, create=False)
        return None if found is None else found.get(field)

    def hexists(self, key: str, field: bytes) -> int:
        return int(self.hget(key, field) is not None)

    def hset(self, key: str, mapping: Mapping[bytes, bytes]) -> int:
        if not mapping:
            return 0
        fields = self.hash(key, create=True)
        assert fields is not None
        added, change = 0, 0
        for name, value in mapping.items():  # the size follows each field: no re-count
            old = fields.get(name)
            if old is None:
                added += 1
                change += _FIELD_OVERHEAD + len(name) + len(value)
            else:
                change += len(value) - len(old)
            fields[name] = value
        entry = self.entries[key]
        self.resize(entry, entry.size + change)
        return added

    def hincrby(self, key: str, field: bytes, amount: int) -> int:
        current = self.hget(key, field) or b"0"
        try:
            total = int(current) + amount
        except ValueError:
            raise StoreError("ERR: the hash value is not an integer") from None
        self.hset(key, {field: str(total).encode()})
        return total

    def zadd(self, key: str, score: float, member: bytes, *, nx: bool = False) -> int:
        found = self.sorted_set(key, create=True)
        assert found is not None
        if nx and member in found.scores:
            return 0
        added = found.add(member, score)
        if added:
            self.resize(self.entries[key], _KEY_OVERHEAD + len(key) + found.size)
        return added

    def zrem(self, key: str, member: bytes) -> int:
        return self._shrink(key, lambda found: found.remove(member))

    def zscore(self, key: str, member: bytes) -> float | None:
        found = self.sorted_set(key, create=False)
        return None if found is None else found.scores.get(member)

    def zcard(self, key: str) -> int:
        found = self.sorted_set(key, create=False)
        return 0 if found is None else len(found.scores)

    def zremrangebyscore_upto(self, key: str, high: float) -> int:
        return self._shrink(key, lambda found: found.remove_upto(high))

    def zfirst(self, key: str) -> tuple[bytes, float] | None:
        first = None if (found := self.sorted_set(key, create=False)) is None else found.first()
        if first is None:
            return None
        score, member = first
        return member, score


class MemoryStore(Store):
    """The in-process :class:`Store`; ``clock`` (monotonic seconds) is injectable for tests."""

    never_waits = True

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "",
    ) -> None:
        super().__init__(prefix)
        self._data = _Data(max_entries, max_bytes, clock)

    def __len__(self) -> int:
        """How many keys the store holds in every namespace (expired, undropped ones too)."""
        return len(self._data.entries)

    @property
    def size_bytes(self) -> int:
        """The estimated footprint of every key, in every namespace."""
        return self._data.bytes

    async def get(self, key: str) -> bytes | None:
        return self._data.get(self.key(key))

    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        self._data.set(self.key(key), value, px=ttl_ms(ttl_s))
        self._data.settle()

    async def set_if_absent(self, key: str, value: bytes, *, ttl_s: float) -> bool:
        px = ttl_ms(ttl_s)
        full = self.key(key)
        if self._data.live(full) is not None:
            return False
        self._data.set(full, value, px=px)
        self._data.settle()
        return True

    async def delete(self, *keys: str) -> int:
        return sum(self._data.delete(self.key(key)) for key in keys)

    async def ttl(self, key: str) -> float | None:
        entry = self._data.live(self.key(key))
        if entry is None:
            return None
        return round(max(0.0, entry.expires_at - self._data.clock()), 3)  # ms, as Redis

    async def expire(self, key: str, *, ttl_s: float) -> bool:
        return self._data.pexpire(self.key(key), ttl_ms(ttl_s)) == 1

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        fields = self._data.hash(self.key(key), create=False)
        return {} if fields is None else {k.decode(): v for k, v in fields.items()}

    async def hash_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        stored = self._data.hash(self.key(key), create=False) or {}
        return [stored.get(name.encode()) for name in fields]

    async def hash_delete(self, key: str, *fields: str) -> int:
        full = self.key(key)
        stored = self._data.hash(full, create=False)
        if stored is None:
            return 0
        removed, freed = 0, 0
        for name in fields:
            old = stored.pop(name.encode(), None)
            if old is not None:
                removed += 1
                freed += _FIELD_OVERHEAD + len(name.encode()) + len(old)
        if not stored:
            self._data.drop(full)
        else:
            entry = self._data.entries[full]
            self._data.resize(entry, entry.size - freed)
        return removed

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        full = [self.key(key) for key in keys]
        encoded = [encode_arg(arg) for arg in args]
        try:
            return script.python(self._data, full, encoded)
        finally:
            self._data.settle()

    def namespaced(self, namespace: str) -> MemoryStore:
        view = MemoryStore.__new__(MemoryStore)
        Store.__init__(view, self._child_prefix(namespace))
        view._data = self._data
        return view

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        """Nothing to release; the keys stay until the store is dropped."""
