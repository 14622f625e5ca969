"""Choosing and opening the store: ``STATE_BACKEND=memory|redis``."""

from __future__ import annotations

from enum import StrEnum

from llm_gateway.state.memory import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, MemoryStore
from llm_gateway.state.store import Store

__all__ = ["StateBackend", "open_store"]


class StateBackend(StrEnum):
    """Where shared state lives: this process only, or Redis for every replica."""

    MEMORY = "memory"
    REDIS = "redis"


def open_store(
    backend: StateBackend | str,
    redis_url: str | None = None,
    *,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    prefix: str | None = None,
    timeout_s: float = 5.0,
) -> Store:
    """The gateway's one store, opened once at start-up and closed with ``aclose``.

    ``max_entries`` and ``max_bytes`` bound the memory store; ``redis_url`` is
    required for Redis, whose keys start with ``prefix`` (default ``llmgw:``) and
    whose every command (and wait for a pooled connection) gives up after ``timeout_s``.
    Nothing connects here: Redis is reached on the first operation (or
    :meth:`Store.ping`), so start-up order does not matter.
    """
    backend = StateBackend(backend)
    if backend is StateBackend.MEMORY:
        return MemoryStore(max_entries=max_entries, max_bytes=max_bytes, prefix=prefix or "")
    if not redis_url:
        raise ValueError("the redis state backend needs a Redis URL")
    from llm_gateway.state.redis import DEFAULT_PREFIX, RedisStore

    return RedisStore.from_url(
        redis_url,
        prefix=DEFAULT_PREFIX if prefix is None else prefix,
        timeout_s=timeout_s,
        socket_timeout_s=timeout_s,
    )
