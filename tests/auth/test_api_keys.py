from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from llm_gateway.auth import Authenticator, Credentials, credential_from
from llm_gateway.auth.api_keys import ApiKeyStore, digest
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.errors import AuthenticationFailed, InvalidRequest
from llm_gateway.settings import async_driver_url, load_settings
from llm_gateway.storage import Database
from llm_gateway.storage.models import ApiKey


@pytest.fixture
async def store(database_url: str):  # type: ignore[no-untyped-def]
    db = Database(async_driver_url(database_url))
    await db.upgrade()
    yield ApiKeyStore(db.sessions, cache_seconds=0)
    await db.dispose()


async def _code(store: ApiKeyStore, key: str) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        await store.verify(key)
    assert key not in info.value.message
    return info.value.code


async def test_a_created_key_verifies_and_only_its_digest_is_stored(store: ApiKeyStore) -> None:
    key, info = await store.create(user_id="svc", role="user", tier="premium", tenant="acme")
    assert key.startswith(f"lsg_{info.key_id}_")
    principal = await store.verify(key)
    assert (principal.user_id, principal.tenant, principal.key_id) == ("svc", "acme", info.key_id)
    assert principal.auth_method == "api_key"
    async with store.sessions() as session:
        row = (await session.scalars(select(ApiKey))).one()
    assert row.key_sha256 == digest(key)
    assert key not in repr(vars(row))


async def test_a_key_may_be_bound_to_an_environment(store: ApiKeyStore) -> None:
    key, info = await store.create(user_id="ci", role="user", environment="staging")
    assert info.environment == "staging"
    assert (await store.verify(key)).environment == "staging"
    plain, _ = await store.create(user_id="dev", role="user")
    assert (await store.verify(plain)).environment is None


async def test_unknown_malformed_revoked_and_expired_keys_are_refused(store: ApiKeyStore) -> None:
    key, info = await store.create(user_id="u", role="user")
    assert await _code(store, key[:-2] + "xx") == "unknown_api_key"
    assert await _code(store, "lsg_short") == "malformed_api_key"
    assert await _code(store, f"lsg_{'0' * 12}_whatever") == "unknown_api_key"
    assert await store.revoke(info.key_id)
    assert not await store.revoke(info.key_id)  # already revoked
    assert await _code(store, key) == "api_key_revoked"
    old, _ = await store.create(
        user_id="u", role="user", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert await _code(store, old) == "api_key_expired"


async def test_list_shows_keys_without_secrets_and_filters_by_tenant(store: ApiKeyStore) -> None:
    await store.create(user_id="a", role="user", tenant="t1")
    await store.create(user_id="b", role="user", tenant="t2")
    assert [k.user_id for k in await store.list(tenant="t1")] == ["a"]
    assert len(await store.list()) == 2


async def test_revocation_takes_effect_once_the_cache_entry_expires(database_url: str) -> None:
    db = Database(async_driver_url(database_url))
    await db.upgrade()
    try:
        cached = ApiKeyStore(db.sessions, cache_seconds=0.2)
        admin = ApiKeyStore(db.sessions, cache_seconds=0)  # another replica, or the CLI
        key, info = await cached.create(user_id="u", role="user")
        await cached.verify(key)
        await admin.revoke(info.key_id)
        await cached.verify(key)  # still trusted from the cache
        await asyncio.sleep(0.25)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await cached.verify(key)
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", None, "abc"),
        (None, "k", "k"),
    ],
)
def test_credentials_come_from_bearer_or_x_api_key(
    authorization: str | None, x_api_key: str | None, expected: str
) -> None:
    credentials = Credentials(
        (authorization,) if authorization else (), (x_api_key,) if x_api_key else ()
    )
    assert credential_from(credentials) == expected


@pytest.mark.parametrize(
    "credentials",
    [
        Credentials(("Bearer a",), ("b",)),
        Credentials(("Bearer a", "Bearer b")),
        Credentials((), ("a", "b")),
        Credentials(("Bearer a", "Bearer a")),
    ],
)
def test_more_than_one_credential_is_ambiguous(credentials: Credentials) -> None:
    with pytest.raises(InvalidRequest) as info:
        credential_from(credentials)
    assert (info.value.status, info.value.code) == (400, "ambiguous_credentials")


def test_blank_credential_headers_do_not_count() -> None:
    raw = [(b"host", b"h"), (b"authorization", b"Bearer a"), (b"x-api-key", b"  ")]
    assert credential_from(Credentials.from_headers(raw)) == "a"
    twice = [(b"x-api-key", b"k1"), (b"accept", b"*/*"), (b"x-api-key", b"k2")]
    assert Credentials.from_headers(twice) == Credentials((), ("k1", "k2"))


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_credentials"),
        ("Basic dXNlcg==", "malformed_credentials"),
        ("Bearer ", "malformed_credentials"),
    ],
)
def test_missing_or_non_bearer_credentials(authorization: str | None, code: str) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        credential_from(Credentials((authorization,) if authorization else ()))
    assert info.value.code == code


async def test_the_authenticator_routes_keys_and_tokens(store: ApiKeyStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"DATA_DIR": str(tmp_path)}, env_file=None)
    auth = Authenticator(JWTVerifier(settings.auth), store)
    key, _ = await store.create(user_id="svc", role="user")
    assert (await auth.authenticate(Credentials((), (key,)))).auth_method == "api_key"
    with pytest.raises(AuthenticationFailed) as info:
        await auth.authenticate(Credentials.bearer("eyJhbGciOiJIUzI1NiJ9.e30.x"))
    assert info.value.code in ("invalid_signature", "invalid_claims", "malformed_token")
