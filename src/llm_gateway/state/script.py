"""A named atomic program for the state store, in Lua for Redis and in Python for memory.

The Python twin is written line for line against :class:`Ops`, the Redis
commands it needs, synchronous: the memory store runs it with no ``await``
inside, which is as atomic on one event loop as a Lua script is on Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

__all__ = ["Arg", "Ops", "PythonTwin", "Reply", "Script", "encode_arg"]

Arg: TypeAlias = bytes | str | int | float
"""A script argument; Redis and a Python twin receive it as bytes (see :func:`encode_arg`)."""

Reply: TypeAlias = int | bytes | list["Reply"] | None
"""What a script returns, as Redis converts a Lua value: integer, bulk string, nil or array."""


def encode_arg(arg: Arg) -> bytes:
    """An argument as Redis receives it: text UTF-8 encoded, numbers in decimal."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):  # an int, but which string? Redis clients refuse it too
        raise TypeError("a script argument cannot be a bool; pass 0 or 1")
    if isinstance(arg, int):
        return str(arg).encode()
    if isinstance(arg, float):
        return repr(arg).encode()
    raise TypeError(f"a script argument must be bytes, str, int or float, not {type(arg)}")


class Ops(Protocol):
    """The Redis commands a script's Python twin may use, on the memory store's data.

    Each does what the Redis command of the same name does, including its
    treatment of TTLs (``set`` replaces one, ``incrby`` and ``hset`` keep it)
    and of missing keys (``pttl`` is -2, ``-1`` when there is no expiry).
    """

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, *, px: int) -> None: ...
    def delete(self, key: str) -> int: ...
    def pexpire(self, key: str, ms: int) -> int: ...
    def pttl(self, key: str) -> int: ...
    def incrby(self, key: str, amount: int) -> int: ...
    def incrbyfloat(self, key: str, amount: float) -> bytes: ...
    def hget(self, key: str, field: bytes) -> bytes | None: ...
    def hexists(self, key: str, field: bytes) -> int: ...
    def hset(self, key: str, mapping: Mapping[bytes, bytes]) -> int: ...
    def hincrby(self, key: str, field: bytes, amount: int) -> int: ...
    # Sorted sets (scores are numbers; the sliding windows' logs and the waiting queues)
    def zadd(self, key: str, score: float, member: bytes, *, nx: bool = False) -> int: ...
    def zrem(self, key: str, member: bytes) -> int: ...
    def zscore(self, key: str, member: bytes) -> float | None: ...
    def zcard(self, key: str) -> int: ...
    def zremrangebyscore_upto(self, key: str, high: float) -> int:
        """``ZREMRANGEBYSCORE key -inf high``: remove the members scored at most ``high``."""

    def zfirst(self, key: str) -> tuple[bytes, float] | None:
        """``ZRANGE key 0 0 WITHSCORES``: the lowest-scored member and its score."""


PythonTwin: TypeAlias = Callable[[Ops, Sequence[str], Sequence[bytes]], Reply]


@dataclass(frozen=True, slots=True)
class Script:
    """A named atomic program: ``lua`` for Redis, ``python`` for the memory store.

    Both receive the full (namespaced) keys and the arguments as bytes, and
    must return the same reply. Redis gets it once (``SCRIPT LOAD``) and runs
    it by digest (``EVALSHA``), loading it again when the server lost it.
    """

    name: str
    lua: str
    python: PythonTwin = field(repr=False)
    #: The digest Redis knows the script by, computed once.
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.lua.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)
