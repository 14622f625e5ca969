"""The running gateway's state: one shared store, built from STATE_BACKEND, used by the vault."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from llm_gateway.config import load_gateway_config
from llm_gateway.runtime import AppState
from llm_gateway.settings import load_settings
from llm_gateway.state import MemoryStore, Store
from llm_gateway.state.redis import RedisStore
from tests.state.cases import ClosedCount

CONFIG = Path(__file__).resolve().parents[1] / "config"
VAULT_KEY = base64.b64encode(bytes(range(32))).decode()


async def _started(tmp_path: Path, **env: str) -> AppState:
    base = {"DATA_DIR": str(tmp_path), "CONFIG_DIR": str(CONFIG), "DLP_NER": "off"}
    settings = load_settings({**base, "DEMO_MODEL": "off", **env}, env_file=None)
    return await AppState.start(settings, load_gateway_config(settings.providers))


async def _vault_writes_reach(state: AppState) -> bool:
    """A token the vault hands out is in the gateway's store, under the vault's namespace."""
    assert state.dlp is not None
    conversation = f"runtime-{uuid.uuid4().hex}"
    await state.dlp.vault.session(conversation).token_for("PERSON", "Ada")
    found = await state.store.hash_get(f"vault:{conversation}", ["count"])
    await state.dlp.vault.store.delete(conversation)  # wherever the vault put it
    return found == [b"1"]


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        pytest.param({}, MemoryStore, id="memory"),
        pytest.param(
            {"STATE_BACKEND": "redis", "DLP_VAULT": "redis", "DLP_VAULT_KEY": VAULT_KEY},
            RedisStore,
            id="redis",
            marks=pytest.mark.redis,
        ),
    ],
)
async def test_one_store_from_state_backend_is_shared_with_the_vault(
    tmp_path: Path, request: pytest.FixtureRequest, env: dict[str, str], kind: type[Store]
) -> None:
    if kind is RedisStore:
        env = {**env, "REDIS_URL": request.getfixturevalue("redis_server_url")}
    state = await _started(tmp_path, **env)
    try:
        assert isinstance(state.store, kind)
        assert await _vault_writes_reach(state)
    finally:
        await state.stop()


async def test_stopping_closes_the_store_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ClosedCount()
    monkeypatch.setattr("llm_gateway.runtime.open_store", lambda *args, **kwargs: store)
    state = await _started(tmp_path)
    assert state.store is store
    await state.stop()
    assert store.closed == 1  # the gateway's, so not the vault's to close as well


@pytest.mark.redis
async def test_a_vault_elsewhere_than_the_state_keeps_a_store_of_its_own(
    tmp_path: Path, redis_server_url: str
) -> None:
    state = await _started(
        tmp_path, REDIS_URL=redis_server_url, DLP_VAULT="redis", DLP_VAULT_KEY=VAULT_KEY
    )
    try:
        assert isinstance(state.store, MemoryStore)
        assert not await _vault_writes_reach(state)
        assert state.dlp is not None
        assert isinstance(state.dlp.vault.store, RedisStore)
    finally:
        await state.stop()


async def test_the_audit_wait_and_the_shutdown_grace_reach_their_users(tmp_path: Path) -> None:
    state = await _started(tmp_path, AUDIT_WAIT_SECONDS="3.5", SHUTDOWN_GRACE_SECONDS="7")
    try:
        assert state.audit.wait_timeout_s == 3.5
        assert state.drain.grace_s == 7.0
    finally:
        await state.stop()


async def test_the_audit_mode_and_spool_settings_reach_the_writer(tmp_path: Path) -> None:
    spool = tmp_path / "elsewhere"
    state = await _started(
        tmp_path, AUDIT_MODE="fast", AUDIT_SPOOL_DIR=str(spool), AUDIT_SPOOL_MAX_MB="3",
        AUDIT_SPOOL_AFTER_SECONDS="0.5", AUDIT_QUEUE_MAX="77",
    )  # fmt: skip
    try:
        writer = state.audit
        assert writer.mode.value == "fast"
        assert (writer.spool_after_s, writer.queue_max) == (0.5, 77)
        assert writer.spool is not None
        assert (writer.spool.root, writer.spool.max_bytes) == (spool, 3 << 20)
        assert writer.spool.fsync is False  # fast mode: the page cache is enough
        assert writer.spool.directory.parent == spool  # made and locked at start-up
    finally:
        await state.stop()
    state = await _started(tmp_path, AUDIT_SPOOL_MAX_MB="0")
    try:
        assert state.audit.spool is None
        assert state.audit.mode.value == "strict"
    finally:
        await state.stop()
