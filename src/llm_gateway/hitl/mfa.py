"""TOTP codes for confirmations that need MFA: enrolment, and codes checked once each.

``llm-gateway mfa enroll --user U [--tenant T]`` makes a person's secret,
stores it sealed in the database (AES-GCM under a key derived from the vault
key, bound to the person), and prints it with its ``otpauth://`` URI for an
authenticator app. A code is accepted for the current 30-second step or the
one before or after (clock drift), and only once: a used code is remembered
in the state store until it could no longer be valid, so a code seen over a
shoulder or replayed from a log cannot confirm a second action.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_gateway.dlp.vault_crypto import derive_key
from llm_gateway.state import Store
from llm_gateway.storage.models import MfaSecret

ISSUER = "LLM Gateway"
_USED_TTL_S = 120  # longer than any code stays valid (three 30-second steps)


def _person(tenant: str | None, user_id: str) -> bytes:
    return f"{tenant or ''}\x00{user_id}".encode()


class MfaCodes:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], vault_key: bytes, store: Store
    ) -> None:
        self.sessions = sessions
        self._aead = AESGCM(derive_key(vault_key, "mfa-secrets"))
        self.store = store

    async def enroll(self, user_id: str, tenant: str | None) -> tuple[str, str]:
        """A new secret for the person (replacing any), and its ``otpauth://`` URI."""
        secret = pyotp.random_base32()
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), _person(tenant, user_id))
        row = MfaSecret(
            tenant=tenant or "", user_id=user_id, sealed=base64.b64encode(sealed).decode(),
            created_at=datetime.now(UTC),
        )  # fmt: skip
        async with self.sessions() as session, session.begin():
            await session.merge(row)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user_id, issuer_name=ISSUER)
        return secret, uri

    async def verify(self, user_id: str, tenant: str | None, code: str) -> bool:
        """Whether ``code`` is the person's current code, not used before."""
        code = code.strip()
        if not (code.isdigit() and len(code) == 6):
            return False
        secret = await self._secret(user_id, tenant)
        if secret is None or not pyotp.TOTP(secret).verify(code, valid_window=1):
            return False
        person = hashlib.blake2b(_person(tenant, user_id), digest_size=16).hexdigest()
        return await self.store.set_if_absent(f"mfa-used:{person}:{code}", b"1", ttl_s=_USED_TTL_S)

    async def _secret(self, user_id: str, tenant: str | None) -> str | None:
        async with self.sessions() as session:
            row = await session.get(MfaSecret, (tenant or "", user_id))
        if row is None:
            return None
        raw = base64.b64decode(row.sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _person(tenant, user_id)).decode()
        except InvalidTag:
            return None  # sealed under another key, or altered: no code is valid
