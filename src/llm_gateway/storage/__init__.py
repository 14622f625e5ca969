"""Persistence: the tables, the engine and the migrations."""

from llm_gateway.storage.db import Database

__all__ = ["Database"]
