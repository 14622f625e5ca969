"""The shared state store: the one place where state that must agree across replicas lives.

Rate-limit windows, budgets, circuit breakers, pending confirmations and the
DLP vault all need the same few things: a value with an expiry, an atomic
increment, a compare-and-set, and now and then a small atomic program of their
own. :class:`Store` is that interface, with two implementations:

- :class:`~llm_gateway.state.memory.MemoryStore`: one process, bounded, for a
  single replica (the default) and for tests;
- :class:`~llm_gateway.state.redis.RedisStore`: Redis through one pool, shared
  by every replica.

Design rules, modelled on Litestar's stores:

- **TTLs everywhere.** Every write takes ``ttl_s``; nothing the gateway stores
  lives forever, so a crashed writer or a forgotten key cleans itself up.
- **Atomic programs are** :class:`Script` **s**: the Lua source Redis runs, and
  a Python twin, written line for line against :class:`Ops` (the same commands,
  synchronous), that the memory store runs with no ``await`` inside, which is
  just as atomic on one event loop. The built-in increments and compare-and-set
  are scripts too, so the contract tests check both halves of every one.
- **Namespaces, not conventions.** :meth:`Store.namespaced` gives a view whose
  keys carry a prefix, so the vault, the limits and the confirmations can
  never collide, whatever keys they choose.

Values are bytes; keys and hash fields are text. A value is never logged.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

from llm_gateway.state.builtin import COMPARE_AND_SET, HASH_SET, INCR, INCR_FLOAT
from llm_gateway.state.script import Arg, Reply, Script

__all__ = ["Store", "StoreError", "StoreUnavailable", "ttl_ms"]


class StoreError(Exception):
    """The store refused an operation (a wrong type, a broken script). Never names a value."""


class StoreUnavailable(StoreError):
    """The store's backend did not answer (down, unreachable, or every connection busy)."""


def ttl_ms(ttl_s: float) -> int:
    """A TTL in whole milliseconds (Redis's PX), at least 1; refuses what is not a TTL."""
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"a TTL must be a positive number of seconds, got {ttl_s!r}")
    return max(1, math.ceil(ttl_s * 1000))


class Store(ABC):
    """Keys with expiries, atomic increments, compare-and-set and scripts.

    ``prefix`` is prepended to every key (see :meth:`namespaced`). The
    increments, compare-and-set and :meth:`hash_set` are built on :meth:`run`
    from the scripts in :mod:`llm_gateway.state.builtin`, so every backend
    shares their one definition.
    """

    #: True for a store whose operations never wait on I/O: callers need no timeout.
    never_waits: ClassVar[bool] = False

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def key(self, key: str) -> str:
        """The full key a backend stores ``key`` under."""
        return self.prefix + key

    # Plain values

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        """Store ``value``, replacing any value and TTL the key had."""

    @abstractmethod
    async def set_if_absent(self, key: str, value: bytes, *, ttl_s: float) -> bool:
        """Store ``value`` only if the key is absent; True if it was stored (a lock, a claim)."""

    @abstractmethod
    async def delete(self, *keys: str) -> int:
        """Remove the keys; how many existed."""

    @abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds until the key expires; None when absent, ``math.inf`` when it has no expiry
        (only a key written by something other than this store can lack one)."""

    @abstractmethod
    async def expire(self, key: str, *, ttl_s: float) -> bool:
        """Set a new TTL on an existing key (a heartbeat); False when the key is absent."""

    # Hashes: a few fields under one key, expiring together (the vault's conversations)

    @abstractmethod
    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        """Every field of the hash (empty when absent)."""

    @abstractmethod
    async def hash_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        """The given fields' values, in order, None for a missing one."""

    @abstractmethod
    async def hash_delete(self, key: str, *fields: str) -> int:
        """Remove fields (the hash goes when its last field does); how many existed."""

    async def hash_set(self, key: str, mapping: Mapping[str, bytes], *, ttl_s: float) -> None:
        """Set fields and the hash's TTL together, atomically."""

        args: list[Arg] = [ttl_ms(ttl_s)]
        for name, value in mapping.items():
            args += (name, value)
        await self.run(HASH_SET, [key], args)

    # Atomic counters and transitions

    async def incr(self, key: str, amount: int = 1, *, ttl_s: float) -> int:
        """Add ``amount`` and return the new total, atomically across replicas.

        The TTL is set when the increment creates the key and is *not* refreshed
        by later increments: a fixed window that ends ``ttl_s`` after its first
        hit. (A key found without an expiry gets one.)
        """

        reply = await self.run(INCR, [key], [amount, ttl_ms(ttl_s)])
        assert isinstance(reply, int)
        return reply

    async def incr_float(self, key: str, amount: float, *, ttl_s: float) -> float:
        """:meth:`incr` for fractional amounts (costs). Redis adds in long double, Python in
        double: the backends may differ in the last digit, never more."""

        reply = await self.run(INCR_FLOAT, [key], [amount, ttl_ms(ttl_s)])
        assert isinstance(reply, bytes)
        return float(reply)

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl_s: float
    ) -> bool:
        """Store ``new`` only if the value is ``expected`` (None: only if absent).

        True if it was stored. Of concurrent transitions from one state (a
        pending confirmation approved and denied at once) exactly one wins.
        The TTL is replaced by ``ttl_s``.
        """

        if expected is None:
            args: list[Arg] = [0, b"", new, ttl_ms(ttl_s)]
        else:
            args = [1, expected, new, ttl_ms(ttl_s)]
        return await self.run(COMPARE_AND_SET, [key], args) == 1

    # Scripts, views, lifecycle

    @abstractmethod
    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        """Run ``script`` atomically on ``keys`` (namespaced here) with ``args``."""

    @abstractmethod
    def namespaced(self, namespace: str) -> Store:
        """A view of this store whose keys live under ``namespace:``; shares the backend."""

    @abstractmethod
    async def ping(self) -> None:
        """Cheap health check for readiness; raises :class:`StoreUnavailable`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the backend (the pool). A namespaced view's ``aclose`` does nothing."""

    def _child_prefix(self, namespace: str) -> str:
        if not namespace:
            raise ValueError("a namespace must not be empty")
        return f"{self.prefix}{namespace}:"
