"""The vault: keys, the cipher, and the vault on the memory store and on a real Redis."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import uuid
from pathlib import Path

import pytest

from llm_gateway.dlp.vault import (
    Vault,
    VaultFull,
    VaultIntegrityError,
    VaultKeyError,
    VaultUnavailable,
)
from llm_gateway.dlp.vault_crypto import VaultCipher, parse_vault_key, resolve_vault_key
from llm_gateway.state import MemoryStore, Store
from llm_gateway.state.redis import RedisStore
from tests.state.cases import ClosedCount, FakeClock, StoreCase, redis_store

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SSN = "219-09-9999"


# Keys


def test_parse_vault_key_accepts_standard_and_url_safe_base64_with_or_without_padding() -> None:
    raw = bytes([251] * 32)  # encodes with "+" and "/" in standard base64
    standard = base64.b64encode(raw).decode()
    assert "+" in standard or "/" in standard
    assert parse_vault_key(standard) == raw
    assert parse_vault_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert parse_vault_key(f"  {standard}\n") == raw


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(b"short-secret-value").decode(), "decodes to 18 bytes"),
    ],
)
def test_parse_vault_key_refuses_bad_keys_without_echoing_them(text: str, problem: str) -> None:
    with pytest.raises(VaultKeyError, match=problem) as caught:
        parse_vault_key(text)
    assert "DLP_VAULT_KEY" in str(caught.value)
    if text:
        assert text not in str(caught.value)


def test_resolve_vault_key_prefers_the_configured_key(tmp_path: Path) -> None:
    assert resolve_vault_key(base64.b64encode(KEY).decode(), tmp_path) == KEY
    assert not list(tmp_path.iterdir())


def test_resolve_vault_key_generates_a_private_development_key_once(tmp_path: Path) -> None:
    first = resolve_vault_key(None, tmp_path / "data")
    path = tmp_path / "data" / "dlp_vault_key"
    assert len(first) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_vault_key("", tmp_path / "data") == first


# The cipher


def test_a_ciphertext_opens_only_under_its_key_conversation_and_token() -> None:
    sealed = VaultCipher(KEY).conversation("c1").seal("<SSN_1>", SSN)
    assert SSN not in base64.b64decode(sealed).decode("latin-1")
    assert VaultCipher(KEY).conversation("c1").open("<SSN_1>", sealed) == SSN
    for cipher, token in [
        (VaultCipher(OTHER_KEY).conversation("c1"), "<SSN_1>"),
        (VaultCipher(KEY).conversation("c2"), "<SSN_1>"),
        (VaultCipher(KEY).conversation("c1"), "<SSN_2>"),
    ]:
        with pytest.raises(VaultIntegrityError):
            cipher.open(token, sealed)
    flipped = bytearray(base64.b64decode(sealed))
    flipped[-1] ^= 1
    with pytest.raises(VaultIntegrityError):
        VaultCipher(KEY).conversation("c1").open("<SSN_1>", base64.b64encode(flipped))
    with pytest.raises(VaultIntegrityError):
        VaultCipher(KEY).conversation("c1").open("<SSN_1>", "%%%")


def test_fingerprints_are_keyed_and_per_conversation() -> None:
    a = VaultCipher(KEY).conversation("c1").fingerprint("SSN", SSN)
    assert a == VaultCipher(KEY).conversation("c1").fingerprint("SSN", SSN)
    assert a != VaultCipher(KEY).conversation("c2").fingerprint("SSN", SSN)
    assert a != VaultCipher(OTHER_KEY).conversation("c1").fingerprint("SSN", SSN)
    assert SSN not in a


def test_a_vault_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(VaultKeyError):
        Vault(MemoryStore(), b"too short")


# On every store: the memory store (fake clock) and Redis


@pytest.fixture
def store(store_case: StoreCase) -> Store:
    return store_case.store


async def test_round_trip_and_numbering(store: Store) -> None:
    session = Vault(store, KEY).session("tenant:user:c1")
    assert await session.token_for("PERSON", "Ada") == "<PERSON_1>"
    assert await session.token_for("PERSON", "Bob") == "<PERSON_2>"
    assert await session.token_for("SSN", SSN) == "<SSN_1>"
    assert await session.token_for("PERSON", "Ada") == "<PERSON_1>"
    assert await session.tokens_for([("PERSON", "Bob"), ("PERSON", "Cy")]) == [
        "<PERSON_2>",
        "<PERSON_3>",
    ]
    expected = {"<PERSON_1>": "Ada", "<PERSON_2>": "Bob", "<PERSON_3>": "Cy", "<SSN_1>": SSN}
    assert await session.mapping() == expected
    assert await session.values(["<SSN_1>", "<PERSON_9>"]) == {"<SSN_1>": SSN}
    assert await session.tokens_for([]) == []
    assert await session.values([]) == {}


async def test_conversations_are_independent(store: Store) -> None:
    vault = Vault(store, KEY)
    one, two = vault.session("c1"), vault.session("c2")
    assert await one.token_for("PERSON", "Ada") == "<PERSON_1>"
    assert await two.token_for("PERSON", "Bob") == "<PERSON_1>"
    assert await one.mapping() == {"<PERSON_1>": "Ada"}
    assert await two.mapping() == {"<PERSON_1>": "Bob"}


async def test_round_trip_across_two_replicas(store: Store) -> None:
    first, second = Vault(store, KEY), Vault(store, KEY)
    one = first.session("tenant:user:c1")
    assert await one.tokens_for([("PERSON", "Ada"), ("SSN", SSN), ("PERSON", "Bob")]) == [
        "<PERSON_1>",
        "<SSN_1>",
        "<PERSON_2>",
    ]
    other = second.session("tenant:user:c1")
    assert await other.token_for("PERSON", "Bob") == "<PERSON_2>"
    assert await other.token_for("PERSON", "Cy") == "<PERSON_3>"
    expected = {"<PERSON_1>": "Ada", "<SSN_1>": SSN, "<PERSON_2>": "Bob", "<PERSON_3>": "Cy"}
    assert await one.mapping() == expected
    assert await one.values(["<SSN_1>", "<SSN_2>"]) == {"<SSN_1>": SSN}
    assert await second.session("tenant:user:c2").mapping() == {}


async def test_the_store_holds_no_plaintext(store_case: StoreCase) -> None:
    vault = Vault(store_case.store, KEY)
    await vault.session("c1").tokens_for([("SSN", SSN), ("PERSON", "Ada Lovelace")])
    assert await store_case.keys() == ["vault:c1"]  # the vault's namespace, one hash
    stored = await vault.store.hash_get_all("c1")
    assert "t:<SSN_1>" in stored
    everything = b"".join(k.encode() + b"\x00" + v for k, v in stored.items())
    for secret in (SSN, SSN.replace("-", ""), "Ada Lovelace", "Ada"):
        assert secret.encode() not in everything
        assert secret.encode() not in base64.b64decode(stored["t:<SSN_1>"])


async def test_ttl_is_set_refreshed_and_expires(store_case: StoreCase) -> None:
    vault = Vault(store_case.store, KEY, ttl=0.6)
    session = vault.session("c1")
    await session.token_for("SSN", SSN)
    ttl = await vault.store.ttl("c1")
    assert ttl is not None
    assert 0 < ttl <= 0.6
    await store_case.elapse(0.4)
    await session.token_for("PERSON", "Ada")  # a write refreshes the TTL
    ttl = await vault.store.ttl("c1")
    assert ttl is not None
    assert ttl > 0.3
    await store_case.elapse(0.4)
    assert await session.mapping() == {"<SSN_1>": SSN, "<PERSON_1>": "Ada"}
    await store_case.until_gone("vault:c1")
    assert await vault.store.ttl("c1") is None
    assert await session.mapping() == {}
    assert await session.token_for("PERSON", "Bob") == "<PERSON_1>"  # numbering starts over


async def test_tampered_entry_is_not_restored(store: Store) -> None:
    vault = Vault(store, KEY)
    session = vault.session("c1")
    await session.tokens_for([("SSN", SSN), ("PERSON", "Ada")])
    ssn_blob, ada_blob = await vault.store.hash_get("c1", ["t:<SSN_1>", "t:<PERSON_1>"])
    assert ssn_blob is not None
    assert ada_blob is not None
    await vault.store.hash_set("c1", {"t:<SSN_1>": ada_blob, "t:<PERSON_1>": ssn_blob}, ttl_s=60)
    assert await session.mapping() == {}
    assert await session.values(["<SSN_1>"]) == {}


async def test_tampered_or_swapped_ciphertexts_are_not_restored(store: Store) -> None:
    vault = Vault(store, KEY)
    session = vault.session("c1")
    await session.tokens_for([("SSN", SSN), ("PERSON", "Ada"), ("PERSON", "Bob")])
    ssn_blob, ada_blob = await vault.store.hash_get("c1", ["t:<SSN_1>", "t:<PERSON_1>"])
    assert ssn_blob is not None
    assert ada_blob is not None
    await vault.store.hash_set("c1", {"t:<SSN_1>": ada_blob, "t:<PERSON_1>": ssn_blob}, ttl_s=60)
    assert await session.mapping() == {"<PERSON_2>": "Bob"}
    raw = bytearray(base64.b64decode(ssn_blob))
    raw[20] ^= 0x01
    await vault.store.hash_set("c1", {"t:<SSN_1>": base64.b64encode(raw)}, ttl_s=60)
    assert await session.values(["<SSN_1>"]) == {}
    # A ciphertext copied into another conversation does not open there either.
    await Vault(store, KEY).session("c2").token_for("PERSON", "Eve")
    await vault.store.hash_set("c2", {"t:<PERSON_1>": ada_blob}, ttl_s=60)
    assert await Vault(store, KEY).session("c2").mapping() == {}


async def test_with_the_wrong_key_restores_nothing(store: Store) -> None:
    await Vault(store, KEY).session("c1").tokens_for([("SSN", SSN), ("PERSON", "Ada")])
    wrong = Vault(store, OTHER_KEY).session("c1")
    assert await wrong.mapping() == {}
    assert await wrong.values(["<SSN_1>"]) == {}
    # Its fingerprints differ too, so it never hands out another value's token.
    assert await wrong.token_for("SSN", SSN) == "<SSN_2>"


async def test_concurrent_numbering_is_unique_and_consistent(store: Store) -> None:
    replicas = [Vault(store, KEY) for _ in range(4)]
    values = [f"person {n}" for n in range(200)]
    tokens = await asyncio.gather(
        *(replicas[n % 4].session("c1").token_for("PERSON", v) for n, v in enumerate(values))
    )
    assert sorted(tokens) == sorted(f"<PERSON_{n}>" for n in range(1, 201))
    again = await asyncio.gather(
        *(replicas[(n + 1) % 4].session("c1").token_for("PERSON", v) for n, v in enumerate(values))
    )
    assert again == tokens
    assert await replicas[0].session("c1").mapping() == dict(zip(tokens, values, strict=True))


async def test_the_same_value_requested_concurrently_gets_one_token(store: Store) -> None:
    vault = Vault(store, KEY)
    tokens = await asyncio.gather(*(vault.session("c1").token_for("SSN", SSN) for _ in range(50)))
    assert set(tokens) == {"<SSN_1>"}
    assert await vault.session("c1").mapping() == {"<SSN_1>": SSN}


async def test_repairs_a_token_whose_ciphertext_was_never_written(store: Store) -> None:
    vault = Vault(store, KEY)
    session = vault.session("c1")
    await session.token_for("SSN", SSN)
    assert await vault.store.hash_delete("c1", "t:<SSN_1>") == 1  # as if the writer died
    assert await session.mapping() == {}
    assert await session.token_for("SSN", SSN) == "<SSN_1>"
    assert await session.mapping() == {"<SSN_1>": SSN}


async def test_cap_per_conversation(store: Store) -> None:
    vault = Vault(store, KEY, max_tokens_per_conversation=2)
    session = vault.session("c1")
    await session.tokens_for([("PERSON", "A"), ("PERSON", "B")])
    assert await session.token_for("PERSON", "A") == "<PERSON_1>"  # known values still work
    assert await session.token_for("PERSON", "B") == "<PERSON_2>"
    with pytest.raises(VaultFull):
        await session.token_for("PERSON", "C")
    ttl = await vault.store.ttl("c1")  # a refused batch still leaves a TTL
    assert ttl is not None
    assert ttl > 0


async def test_a_shared_store_is_left_open(store: Store) -> None:
    await Vault(store, KEY).aclose()
    await store.ping()  # the gateway's store: its owner closes it
    assert await Vault(store, KEY).session("c1").token_for("SSN", SSN) == "<SSN_1>"


async def test_only_a_store_of_the_vaults_own_is_closed_with_it() -> None:
    shared, own = ClosedCount(), ClosedCount()
    await Vault(shared, KEY).aclose()
    await Vault(own, KEY, owns_store=True).aclose()
    assert (shared.closed, own.closed) == (0, 1)


# The memory store: its bounds


async def test_memory_entries_expire_after_the_ttl_since_the_last_write() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    session = Vault(store, KEY, ttl=60).session("c1")
    await session.token_for("SSN", SSN)
    clock.now += 50
    await session.token_for("PERSON", "Ada")  # a write refreshes the TTL
    clock.now += 50
    assert await session.mapping() == {"<SSN_1>": SSN, "<PERSON_1>": "Ada"}
    clock.now += 11
    assert await session.mapping() == {}
    assert len(store) == 0
    assert store.size_bytes == 0
    assert await session.token_for("PERSON", "Bob") == "<PERSON_1>"  # numbering starts over


async def test_memory_expired_conversations_are_swept_on_later_writes() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    vault = Vault(store, KEY, ttl=60)
    for n in range(100):
        await vault.session(f"c{n}").token_for("PERSON", "Ada")
    clock.now += 61
    await vault.session("new").token_for("PERSON", "Bob")
    assert len(store) == 1
    await vault.session("new").tokens_for([])
    assert len(store) == 1


async def test_memory_is_bounded_by_evicting_least_recently_used_conversations() -> None:
    store = MemoryStore(max_bytes=20_000)
    vault = Vault(store, KEY)
    for n in range(200):
        await vault.session(f"c{n}").token_for("PERSON", f"name {n}")
        assert store.size_bytes <= 20_000
    assert 0 < len(store) < 200
    assert await vault.session("c0").mapping() == {}  # evicted
    assert await vault.session("c199").mapping() == {"<PERSON_1>": "name 199"}


async def test_memory_recently_used_conversations_survive_eviction() -> None:
    store = MemoryStore(max_bytes=4_000)
    vault = Vault(store, KEY)
    keep = vault.session("keep")
    await keep.token_for("PERSON", "Ada")
    for n in range(50):
        await keep.mapping()  # touched: most recently used
        await vault.session(f"c{n}").token_for("PERSON", f"name {n}")
    assert await keep.mapping() == {"<PERSON_1>": "Ada"}
    assert len(store) < 51  # others were evicted


# Redis only


@pytest.mark.redis
async def test_redis_keeps_the_layout_of_the_former_redis_vault(redis_server_url: str) -> None:
    """``llmgw:vault:{conversation}``, as before: a rolling upgrade keeps its tokens."""
    store = RedisStore.from_url(redis_server_url)
    conversation = f"test-{uuid.uuid4().hex}"
    try:
        vault = Vault(store, KEY, ttl=60)
        await vault.session(conversation).token_for("SSN", SSN)
        assert await store.client.exists(f"llmgw:vault:{conversation}") == 1
        assert await store.client.hexists(f"llmgw:vault:{conversation}", "t:<SSN_1>")
    finally:
        await store.client.delete(f"llmgw:vault:{conversation}")
        await store.aclose()


@pytest.mark.redis
async def test_redis_replicas_with_pools_of_their_own_agree(redis_server_url: str) -> None:
    async with redis_store(redis_server_url) as first:
        second = RedisStore.from_url(redis_server_url, prefix=first.prefix)
        try:
            await Vault(first, KEY).session("c1").token_for("PERSON", "Zoë")
            shared = Vault(second, KEY, owns_store=True).session("c1")
            assert await shared.token_for("PERSON", "Zoë") == "<PERSON_1>"
            assert await shared.mapping() == {"<PERSON_1>": "Zoë"}
            assert await shared.values(["<PERSON_1>"]) == {"<PERSON_1>": "Zoë"}
        finally:
            await second.aclose()


async def test_redis_down_is_vault_unavailable() -> None:
    vault = Vault(RedisStore.from_url("redis://127.0.0.1:1/0"), KEY, owns_store=True)
    session = vault.session("c1")
    try:
        with pytest.raises(VaultUnavailable):
            await session.token_for("SSN", SSN)
        with pytest.raises(VaultUnavailable):
            await session.mapping()
        with pytest.raises(VaultUnavailable):
            await session.values(["<SSN_1>"])
    finally:
        await vault.aclose()
