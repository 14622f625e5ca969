"""The vault's keys and cipher: what makes a stored token-to-value entry safe to keep.

Every value is sealed with AES-GCM under a key of its own conversation, derived
from the one configured 32-byte key. Per-conversation keys keep the number of
random 96-bit nonces drawn under any one key tiny, so the birthday bound of
AES-GCM never comes near, however long the configured key lives. The associated
data names the conversation and the token, so a ciphertext copied to another
entry (or another conversation) fails authentication instead of restoring the
wrong value.

Values are looked up by a keyed fingerprint (HMAC-SHA256 of conversation,
label and value), never by the value itself, so the store holds no plaintext
and the same value in two conversations cannot be linked.

    VaultError                 anything the vault cannot do; the caller keeps tokens as tokens
    ├── VaultKeyError          the configured key is missing or malformed (a start-up error)
    ├── VaultIntegrityError    a ciphertext failed authentication: tampered, or another key
    ├── VaultFull              a conversation reached its token cap
    └── VaultUnavailable       the backend (Redis) did not answer
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from llm_gateway.dev_secrets import DevSecret

KEY_BYTES = 32
_NONCE_BYTES = 12
_FINGERPRINT_BYTES = 16
_AD_PREFIX = b"llmgw-vault-v1\x00"
DEV_KEY_FILENAME = "dlp_vault_key"
DEV_KEY_CHARS = 44  # the base64 of KEY_BYTES


class VaultError(Exception):
    """The vault could not do what was asked; tokens stay tokens."""


class VaultKeyError(VaultError, ValueError):
    """The configured vault key is unusable. The message never contains the key."""


class VaultIntegrityError(VaultError):
    """A stored ciphertext failed authentication (tampered, swapped, or another key)."""


class VaultFull(VaultError):
    """A conversation holds as many tokens as the vault allows."""


class VaultUnavailable(VaultError):
    """The vault's backend did not answer."""


def parse_vault_key(text: str, *, name: str = "DLP_VAULT_KEY") -> bytes:
    """The 32 raw bytes of a base64 key (standard or URL-safe alphabet, padding optional).

    Generate one with ``openssl rand -base64 32``.
    """
    cleaned = text.strip()
    if not cleaned:
        raise VaultKeyError(f"{name} is empty; it must be the base64 encoding of 32 random bytes")
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise VaultKeyError(
            f"{name} is not valid base64; it must be the base64 encoding of 32 random bytes"
        ) from None
    if len(raw) != KEY_BYTES:
        raise VaultKeyError(
            f"{name} decodes to {len(raw)} bytes; it must be the base64 encoding of "
            f"exactly {KEY_BYTES} random bytes"
        )
    return raw


def dev_key(configured: str | None, data_dir: Path) -> DevSecret | None:
    """The development key file the vault reads; None when a key is configured."""
    return None if configured else _dev_key_file(data_dir)


def _dev_key_file(data_dir: Path) -> DevSecret:
    return DevSecret(data_dir / DEV_KEY_FILENAME, DEV_KEY_CHARS)


def resolve_vault_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, or a random development key kept in ``DATA_DIR/dlp_vault_key``.

    The file lets restarts of a single-machine gateway restore tokens minted
    before the restart. Replicas sharing a Redis vault must share one configured
    key instead: a key generated on each machine cannot open the others' entries.
    """
    if configured:
        return parse_vault_key(configured)
    secret = _dev_key_file(data_dir)
    encoded = secret.read_or_create(
        lambda: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    )
    return parse_vault_key(encoded, name=str(secret.path))


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte subkey for one purpose, so no key is ever used for two jobs."""
    return hmac.digest(master, b"llmgw-derive-v1\x00" + purpose.encode(), hashlib.sha256)


def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def _mac(prepared: hmac.HMAC, data: bytes) -> bytes:
    """HMAC-SHA256 from a prepared key: copying the keyed state is twice as fast as rekeying."""
    mac = prepared.copy()
    mac.update(data)
    return mac.digest()


class VaultCipher:
    """The configured vault key, prepared once; hands out per-conversation ciphers."""

    __slots__ = ("_aead_base", "_fingerprint_base")

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise VaultKeyError(f"the vault key must be {KEY_BYTES} bytes, got {len(master)}")
        self._aead_base = _keyed(derive_key(master, "vault-aead"))
        self._fingerprint_base = _keyed(derive_key(master, "vault-fingerprint"))

    def conversation(self, conversation: str) -> ConversationCipher:
        conv = conversation.encode()
        return ConversationCipher(
            _mac(self._aead_base, conv), _mac(self._fingerprint_base, conv), conversation
        )


class ConversationCipher:
    """Seals, opens and fingerprints the values of one conversation.

    Built by :meth:`VaultCipher.conversation` (two HMACs, about 3 µs); a
    session keeps one for every value of its conversation.
    """

    __slots__ = ("_ad_prefix", "_aead", "_fingerprint")

    def __init__(self, aead_key: bytes, fingerprint_key: bytes, conversation: str) -> None:
        conv = conversation.encode()
        self._aead = AESGCM(aead_key)
        self._fingerprint = _keyed(fingerprint_key)
        self._ad_prefix = _AD_PREFIX + len(conv).to_bytes(4, "big") + conv + b"\x00"

    def fingerprint(self, label: str, value: str) -> str:
        """The lookup field for a value: keyed, so a low-entropy value cannot be guessed."""
        digest = _mac(self._fingerprint, label.encode() + b"\x00" + value.encode())
        return digest[:_FINGERPRINT_BYTES].hex()

    def seal(self, token: str, value: str) -> str:
        """``base64(nonce || ciphertext || tag)``, bound to this conversation and ``token``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), self._ad_prefix + token.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, token: str, sealed: str | bytes) -> str:
        """The value sealed for ``token``; :class:`VaultIntegrityError` if it is not authentic."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._ad_prefix + token.encode()
            )
            return plain.decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise VaultIntegrityError("a vault entry failed authentication") from None
