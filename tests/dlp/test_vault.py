"""The vault: keys, the cipher, the in-process store and the Redis store (a real Redis)."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from llm_gateway.dlp.vault import (
    InProcessVault,
    VaultFull,
    VaultIntegrityError,
    VaultKeyError,
    VaultUnavailable,
)
from llm_gateway.dlp.vault_crypto import VaultCipher, parse_vault_key, resolve_vault_key
from llm_gateway.dlp.vault_redis import RedisVault

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SSN = "219-09-9999"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


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
        InProcessVault(b"too short")


# In-process


async def test_in_process_round_trip_and_numbering() -> None:
    session = InProcessVault(KEY).session("tenant:user:c1")
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


async def test_in_process_conversations_are_independent() -> None:
    vault = InProcessVault(KEY)
    one, two = vault.session("c1"), vault.session("c2")
    assert await one.token_for("PERSON", "Ada") == "<PERSON_1>"
    assert await two.token_for("PERSON", "Bob") == "<PERSON_1>"
    assert await one.mapping() == {"<PERSON_1>": "Ada"}
    assert await two.mapping() == {"<PERSON_1>": "Bob"}


async def test_in_process_entries_expire_after_the_ttl_since_the_last_write() -> None:
    clock = Clock()
    vault = InProcessVault(KEY, ttl=60, clock=clock)
    session = vault.session("c1")
    await session.token_for("SSN", SSN)
    clock.now += 50
    await session.token_for("PERSON", "Ada")  # a write refreshes the TTL
    clock.now += 50
    assert await session.mapping() == {"<SSN_1>": SSN, "<PERSON_1>": "Ada"}
    clock.now += 11
    assert await session.mapping() == {}
    assert len(vault) == 0
    assert vault.size_bytes == 0
    assert await session.token_for("PERSON", "Bob") == "<PERSON_1>"  # numbering starts over


async def test_in_process_expired_conversations_are_swept_on_later_writes() -> None:
    clock = Clock()
    vault = InProcessVault(KEY, ttl=60, clock=clock)
    for n in range(100):
        await vault.session(f"c{n}").token_for("PERSON", "Ada")
    clock.now += 61
    await vault.session("new").token_for("PERSON", "Bob")
    assert len(vault) == 1
    await vault.session("new").tokens_for([])
    assert len(vault) == 1


async def test_in_process_memory_is_bounded_by_evicting_least_recently_used_conversations() -> None:
    vault = InProcessVault(KEY, max_bytes=20_000)
    for n in range(200):
        await vault.session(f"c{n}").token_for("PERSON", f"name {n}")
        assert vault.size_bytes <= 20_000
    assert 0 < len(vault) < 200
    assert await vault.session("c0").mapping() == {}  # evicted
    assert await vault.session("c199").mapping() == {"<PERSON_1>": "name 199"}


async def test_in_process_recently_used_conversations_survive_eviction() -> None:
    vault = InProcessVault(KEY, max_bytes=4_000)
    keep = vault.session("keep")
    await keep.token_for("PERSON", "Ada")
    for n in range(50):
        await keep.mapping()  # touched: most recently used
        await vault.session(f"c{n}").token_for("PERSON", f"name {n}")
    assert await keep.mapping() == {"<PERSON_1>": "Ada"}


async def test_in_process_cap_per_conversation() -> None:
    session = InProcessVault(KEY, max_tokens_per_conversation=2).session("c1")
    await session.tokens_for([("PERSON", "A"), ("PERSON", "B")])
    assert await session.token_for("PERSON", "A") == "<PERSON_1>"  # known values still work
    with pytest.raises(VaultFull):
        await session.token_for("PERSON", "C")


async def test_in_process_tampered_entry_is_not_restored() -> None:
    vault = InProcessVault(KEY)
    session = vault.session("c1")
    await session.tokens_for([("SSN", SSN), ("PERSON", "Ada")])
    entry = vault._conversations["c1"]
    entry.sealed["<SSN_1>"], entry.sealed["<PERSON_1>"] = (
        entry.sealed["<PERSON_1>"],
        entry.sealed["<SSN_1>"],
    )
    assert await session.mapping() == {}
    assert await session.values(["<SSN_1>"]) == {}


# Redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32)
    client = aioredis.Redis.from_pool(pool)
    yield client
    await client.aclose()


async def test_redis_round_trip_across_two_replicas(client: aioredis.Redis) -> None:
    first, second = RedisVault(client, KEY), RedisVault(client, KEY)
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


def _bytes(raw: bytes | str) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode()


async def test_redis_stores_no_plaintext(client: aioredis.Redis) -> None:
    vault = RedisVault(client, KEY)
    await vault.session("c1").tokens_for([("SSN", SSN), ("PERSON", "Ada Lovelace")])
    keys = await client.keys("*")
    assert keys == [b"llmgw:vault:c1"]
    stored = await client.hgetall("llmgw:vault:c1")
    assert b"t:<SSN_1>" in stored
    everything = b"".join(_bytes(k) + b"\x00" + _bytes(v) for k, v in stored.items())
    for secret in (SSN, SSN.replace("-", ""), "Ada Lovelace", "Ada"):
        assert secret.encode() not in everything
        assert secret.encode() not in base64.b64decode(stored[b"t:<SSN_1>"])


async def test_redis_ttl_is_set_refreshed_and_expires(client: aioredis.Redis) -> None:
    vault = RedisVault(client, KEY, ttl=0.6)
    session = vault.session("c1")
    await session.token_for("SSN", SSN)
    ttl = await client.pttl("llmgw:vault:c1")
    assert 0 < ttl <= 600
    await asyncio.sleep(0.4)
    await session.token_for("PERSON", "Ada")  # a write refreshes the TTL
    assert await client.pttl("llmgw:vault:c1") > 300
    await asyncio.sleep(0.4)
    assert await session.mapping() == {"<SSN_1>": SSN, "<PERSON_1>": "Ada"}
    await asyncio.sleep(0.4)
    assert await client.exists("llmgw:vault:c1") == 0
    assert await session.mapping() == {}


async def test_redis_tampered_or_swapped_ciphertexts_are_not_restored(
    client: aioredis.Redis,
) -> None:
    session = RedisVault(client, KEY).session("c1")
    await session.tokens_for([("SSN", SSN), ("PERSON", "Ada"), ("PERSON", "Bob")])
    key = "llmgw:vault:c1"
    ssn_blob, ada_blob = await client.hmget(key, ["t:<SSN_1>", "t:<PERSON_1>"])
    assert ssn_blob is not None
    assert ada_blob is not None
    await client.hset(key, mapping={"t:<SSN_1>": ada_blob, "t:<PERSON_1>": ssn_blob})
    assert await session.mapping() == {"<PERSON_2>": "Bob"}
    raw = bytearray(base64.b64decode(ssn_blob))
    raw[20] ^= 0x01
    await client.hset(key, "t:<SSN_1>", base64.b64encode(raw))
    assert await session.values(["<SSN_1>"]) == {}
    # A ciphertext copied into another conversation does not open there either.
    await RedisVault(client, KEY).session("c2").token_for("PERSON", "Eve")
    await client.hset("llmgw:vault:c2", "t:<PERSON_1>", ada_blob)
    assert await RedisVault(client, KEY).session("c2").mapping() == {}


async def test_redis_with_the_wrong_key_restores_nothing(client: aioredis.Redis) -> None:
    await RedisVault(client, KEY).session("c1").tokens_for([("SSN", SSN), ("PERSON", "Ada")])
    wrong = RedisVault(client, OTHER_KEY).session("c1")
    assert await wrong.mapping() == {}
    assert await wrong.values(["<SSN_1>"]) == {}
    # Its fingerprints differ too, so it never hands out another value's token.
    assert await wrong.token_for("SSN", SSN) == "<SSN_2>"


async def test_redis_concurrent_numbering_is_unique_and_consistent(
    client: aioredis.Redis,
) -> None:
    replicas = [RedisVault(client, KEY) for _ in range(4)]
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


async def test_redis_the_same_value_requested_concurrently_gets_one_token(
    client: aioredis.Redis,
) -> None:
    vault = RedisVault(client, KEY)
    tokens = await asyncio.gather(*(vault.session("c1").token_for("SSN", SSN) for _ in range(50)))
    assert set(tokens) == {"<SSN_1>"}
    assert await vault.session("c1").mapping() == {"<SSN_1>": SSN}


async def test_redis_repairs_a_token_whose_ciphertext_was_never_written(
    client: aioredis.Redis,
) -> None:
    session = RedisVault(client, KEY).session("c1")
    await session.token_for("SSN", SSN)
    await client.hdel("llmgw:vault:c1", "t:<SSN_1>")  # as if the writer died in between
    assert await session.mapping() == {}
    assert await session.token_for("SSN", SSN) == "<SSN_1>"
    assert await session.mapping() == {"<SSN_1>": SSN}


async def test_redis_cap_per_conversation(client: aioredis.Redis) -> None:
    session = RedisVault(client, KEY, max_tokens_per_conversation=2).session("c1")
    await session.tokens_for([("PERSON", "A"), ("PERSON", "B")])
    assert await session.token_for("PERSON", "B") == "<PERSON_2>"
    with pytest.raises(VaultFull):
        await session.token_for("PERSON", "C")
    assert await client.pttl("llmgw:vault:c1") > 0  # a refused batch still leaves a TTL


async def test_redis_works_with_a_decoding_client(redis_url: str) -> None:
    vault = RedisVault.from_url(redis_url, KEY)
    decoding = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await vault.session("c1").token_for("PERSON", "Zoë")
        shared = RedisVault(decoding, KEY).session("c1")
        assert await shared.token_for("PERSON", "Zoë") == "<PERSON_1>"
        assert await shared.mapping() == {"<PERSON_1>": "Zoë"}
        assert await shared.values(["<PERSON_1>"]) == {"<PERSON_1>": "Zoë"}
    finally:
        await decoding.aclose()
        await vault.aclose()


async def test_redis_down_is_vault_unavailable() -> None:
    vault = RedisVault.from_url("redis://127.0.0.1:1/0", KEY)
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
