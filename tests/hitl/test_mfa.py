"""TOTP codes: a person's code is accepted once, and nothing else is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest

from llm_gateway.hitl.mfa import MfaCodes
from llm_gateway.state import MemoryStore
from llm_gateway.storage import Database
from llm_gateway.storage.models import MfaSecret

KEY = bytes(range(32))


@pytest.fixture
async def codes(tmp_path: Path) -> AsyncIterator[MfaCodes]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/mfa.db")
    await db.upgrade()
    try:
        yield MfaCodes(db.sessions, KEY, MemoryStore())
    finally:
        await db.dispose()


async def test_the_current_code_is_accepted_once(codes: MfaCodes) -> None:
    secret, uri = await codes.enroll("alice", "acme")
    assert uri.startswith("otpauth://totp/LLM%20Gateway:alice?secret=")
    code = pyotp.TOTP(secret).now()
    assert await codes.verify("alice", "acme", code)
    assert not await codes.verify("alice", "acme", code)  # single use


async def test_wrong_codes_other_people_and_the_unenrolled_are_refused(codes: MfaCodes) -> None:
    secret, _ = await codes.enroll("alice", "acme")
    code = pyotp.TOTP(secret).now()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert not await codes.verify("alice", "acme", wrong)
    assert not await codes.verify("alice", "globex", code)  # bound to the tenant too
    assert not await codes.verify("bob", "acme", code)
    assert not await codes.verify("alice", "acme", "12345a")
    assert await codes.verify("alice", "acme", f" {code} ")


async def test_the_secret_is_stored_sealed_and_an_altered_one_accepts_nothing(
    codes: MfaCodes,
) -> None:
    secret, _ = await codes.enroll("alice", None)
    async with codes.sessions() as session, session.begin():
        row = await session.get(MfaSecret, ("", "alice"))
        assert row is not None
        assert secret not in row.sealed
        row.sealed = row.sealed[:-4] + ("AAAA" if not row.sealed.endswith("AAAA") else "BBBB")
    assert not await codes.verify("alice", None, pyotp.TOTP(secret).now())
