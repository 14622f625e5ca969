"""Shared fixtures: real PostgreSQL and Redis when they are there.

Tests that need a service skip with a clear message when it is not running,
except under CI (``CI=true``), where a missing service is a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests.state.cases import StoreCase, memory_case, redis_store

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("TEST_PG_DB", "test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(f"{message}; start it to run this test")


def require_modules(*names: str, extra: str) -> None:
    """Like :func:`require_service`, for an optional extra's packages."""
    import importlib.util

    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = f"the {extra} extra is not installed (missing: {', '.join(missing)})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: it is required)")
    pytest.skip(f"{message}; pip install -e '.[{extra}]' to run this test")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}"


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    import asyncpg

    name = f"llm_gateway_test_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/gateway.db"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run a test against SQLite and against PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session", autouse=True)
def _one_default_ssl_context() -> Iterator[None]:
    """Every HTTP client builds an SSL context and loads the CA bundle into it, about
    20 ms, even for the plain http:// URLs of the gateway and the emulators, and the
    end-to-end tests create thousands of clients: the tests' own (httpx) and the
    OpenAI and Anthropic SDKs' (httpx2, their fork of it). The default context is
    built once per library and shared (the gateway itself uses neither)."""
    import httpx
    import httpx2

    with pytest.MonkeyPatch.context() as patch:
        # Replaced where the transports look it up (their module does not re-export it).
        for name, library in (("httpx", httpx), ("httpx2", httpx2)):
            shared = _shared_default(library.create_ssl_context)
            patch.setattr(f"{name}._transports.default.create_ssl_context", shared)
        yield


def _shared_default(original: Callable[..., ssl.SSLContext]) -> Callable[..., ssl.SSLContext]:
    shared: dict[tuple[str | None, str | None], ssl.SSLContext] = {}

    def create_ssl_context(
        verify: Any = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if not (verify is True and cert is None and trust_env):
            return original(verify=verify, cert=cert, trust_env=trust_env)
        # what the default context is built from (both libraries read these two variables)
        key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in shared:
            shared[key] = original()
        return shared[key]

    return create_ssl_context


REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The test Redis, not flushed: for tests isolated by a key prefix of their own
    (see ``tests/state/cases.py``), which may run beside other users of the server."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store_case(request: pytest.FixtureRequest) -> AsyncIterator[StoreCase]:
    """Run a test against the memory store (on a fake clock) and against Redis."""
    if request.param == "memory":
        yield memory_case()
        return
    async with redis_store(request.getfixturevalue("redis_server_url")) as store:
        yield StoreCase("redis", store)
