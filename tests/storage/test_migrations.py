from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from llm_gateway.storage.db import SchemaOutdated
from llm_gateway.storage.models import Base


async def test_migrations_create_exactly_the_models_schema(database_url: str) -> None:
    db = Database(async_driver_url(database_url))
    try:
        await db.upgrade()
        await db.upgrade()  # idempotent

        def diff(connection):  # type: ignore[no-untyped-def]
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"audit_logs", "api_keys", "tenants", "teams", "users", "alembic_version"} <= tables
        await db.require_current()
    finally:
        await db.dispose()


async def test_an_unmigrated_database_is_refused_with_advice(database_url: str) -> None:
    db = Database(async_driver_url(database_url))
    try:
        with pytest.raises(SchemaOutdated, match="llm-gateway db upgrade"):
            await db.require_current()
    finally:
        await db.dispose()
