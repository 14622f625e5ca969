"""The key service the admin API and the CLI share (:mod:`llm_gateway.auth.key_admin`),
and the admin API's body checks: tenants confined, rotation's overlap, 400s naming fields.
The routes end to end: ``tests/e2e/test_admin_keys.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from llm_gateway.api.admin import CreateKey, RotateKey, _body
from llm_gateway.auth import Credentials
from llm_gateway.auth.api_keys import ApiKeyStore
from llm_gateway.auth.key_admin import (
    EVERY_TENANT,
    ApiKeyNotActive,
    ApiKeyNotFound,
    KeyAdmin,
    KeySpec,
)
from llm_gateway.errors import AuthenticationFailed, InvalidRequest
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[KeyAdmin]:
    db = Database(async_driver_url(database_url))
    await db.upgrade()
    yield KeyAdmin(ApiKeyStore(db.sessions, cache_seconds=60))
    await db.dispose()


SPEC = KeySpec(user_id="svc", role="service", tier="premium", team="red", environment="prod")


async def test_each_tenant_sees_only_its_own_keys(admin: KeyAdmin) -> None:
    _, acme = await admin.create(SPEC, "acme")
    _, globex = await admin.create(SPEC, "globex")
    _, nobody = await admin.create(SPEC, None)

    assert [k.key_id for k in await admin.list("acme")] == [acme.key_id]
    assert [k.key_id for k in await admin.list(None)] == [nobody.key_id]
    every = {k.key_id for k in await admin.list(EVERY_TENANT)}
    assert every == {acme.key_id, globex.key_id, nobody.key_id}

    assert (await admin.show(acme.key_id, "acme")).tenant == "acme"
    assert (await admin.show(acme.key_id, EVERY_TENANT)).key_id == acme.key_id
    for scope in ("globex", None):
        with pytest.raises(ApiKeyNotFound):
            await admin.show(acme.key_id, scope)
        with pytest.raises(ApiKeyNotFound):
            await admin.revoke(acme.key_id, scope)
        with pytest.raises(ApiKeyNotFound):
            await admin.rotate(acme.key_id, scope, 60)
    with pytest.raises(ApiKeyNotFound):
        await admin.show("no such id!", EVERY_TENANT)
    assert (await admin.show(acme.key_id, "acme")).state() == "active"


async def test_rotation_keeps_the_attributes_and_the_old_key_for_the_overlap(
    admin: KeyAdmin,
) -> None:
    expiry = datetime.now(UTC) + timedelta(days=2)
    spec = replace(SPEC, description="jobs", expires_at=expiry, allowed_models=("m1", "m2"))
    old_key, old = await admin.create(spec, "acme")
    assert (await admin.store.verify(old_key)).allowed_models == ("m1", "m2")
    store = admin.store
    await store.verify(old_key)  # cached now: a rotation must not leave it cached as it was

    new_key, new, old_now = await admin.rotate(old.key_id, "acme", 3600)
    for attribute in (
        "user_id", "role", "tier", "team", "tenant", "description", "environment",
        "allowed_models",
    ):  # fmt: skip
        assert getattr(new, attribute) == getattr(old, attribute), attribute
    assert new.expires_at == expiry  # the successor keeps the key's own expiry
    assert old_now.replaced_by == new.key_id
    assert old_now.expires_at is not None
    assert old_now.expires_at - datetime.now(UTC) <= timedelta(seconds=3600)
    assert old_now.state() == "rotating"
    assert (await store.verify(old_key)).key_id == old.key_id
    assert (await store.verify(new_key)).key_id == new.key_id
    # once the overlap is over
    assert old_now.state(old_now.expires_at) == "rotated"

    with pytest.raises(ApiKeyNotActive):
        await admin.rotate(old.key_id, "acme", 0)

    short_key, short = await admin.create(SPEC, "acme")
    await store.verify(short_key)
    _, _, short_now = await admin.rotate(short.key_id, "acme", 0)
    with pytest.raises(AuthenticationFailed) as refused:
        await store.verify(short_key)
    assert refused.value.code == "api_key_rotated"
    assert short_now.state() == "rotated"


async def test_a_revoked_key_is_neither_rotated_nor_revoked_again(admin: KeyAdmin) -> None:
    key, info = await admin.create(SPEC, "acme")
    revoked = await admin.revoke(info.key_id, "acme")
    assert revoked.state() == "revoked"
    assert (await admin.revoke(info.key_id, "acme")).revoked_at == revoked.revoked_at
    with pytest.raises(ApiKeyNotActive) as refused:
        await admin.rotate(info.key_id, "acme", 60)
    assert refused.value.status == 409
    with pytest.raises(AuthenticationFailed):
        await admin.store.verify(key)


async def test_the_overlap_is_bounded(admin: KeyAdmin) -> None:
    _, info = await admin.create(SPEC, "acme")
    for overlap in (-1, 31 * 86_400):
        with pytest.raises(InvalidRequest) as refused:
            await admin.rotate(info.key_id, "acme", overlap)
        assert refused.value.param == "overlap_seconds"
    assert (await admin.show(info.key_id, "acme")).replaced_by is None


# --- bodies -----------------------------------------------------------------------------


def _ctx(raw: bytes) -> RequestContext:
    async def read() -> bytes:
        return raw

    async def handler(ctx: RequestContext) -> None:
        return None

    return RequestContext(
        endpoint="admin.keys.create", credentials=Credentials(), read_body=read,
        payload=ActionCall("admin.keys.create", handler), request_id="r",
    )  # fmt: skip


async def test_a_good_body_is_read() -> None:
    body = await _body(
        _ctx(b'{"user_id": "u", "tier": "free", "expires_in_seconds": 60}'), CreateKey
    )
    assert (body.user_id, body.role, body.tier, body.expires_in_seconds) == (
        "u",
        "user",
        "free",
        60,
    )
    rotate = await _body(_ctx(b'{"overlap_seconds": 0}'), RotateKey)
    assert rotate.overlap_seconds == 0


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b'{"user_id": null}', "invalid_field", "user_id"),
        (b'{"user_id": "u", "role": ""}', "invalid_field", "role"),
        (b'{"user_id": "u", "tier": ["free"]}', "invalid_field", "tier"),
        (b'{"user_id": "' + b"x" * 256 + b'"}', "invalid_field", "user_id"),
        (b'{"user_id": "u", "expires_at": "soon"}', "invalid_field", "expires_at"),
        (b'{"user_id": "u", "tenant": "other"}', "unknown_field", "tenant"),
        (b'{"tier": "free"}', "missing_field", "user_id"),
    ],
)
async def test_a_bad_body_names_its_field(raw: bytes, code: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await _body(_ctx(raw), CreateKey)
    assert (refused.value.code, refused.value.param, refused.value.details) == (
        code, param, {"param": param},
    )  # fmt: skip
    assert refused.value.message.startswith(f"{param}: ")
