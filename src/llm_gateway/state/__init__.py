"""The shared state store (see :mod:`llm_gateway.state.store`): one per gateway, in ``AppState``.

A low layer: it imports only the standard library and redis-py, never the
pipeline, the API or the runtime.
"""

from llm_gateway.state.factory import StateBackend, open_store
from llm_gateway.state.memory import MemoryStore
from llm_gateway.state.script import Arg, Ops, Reply, Script
from llm_gateway.state.store import Store, StoreError, StoreUnavailable

__all__ = [
    "Arg",
    "MemoryStore",
    "Ops",
    "Reply",
    "Script",
    "StateBackend",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
