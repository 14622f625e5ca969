"""The reversible-redaction vault: which token stands for which value, per conversation.

A conversation's tokens (``<PERSON_1>``, ``<SSN_2>``) are numbered per label in
the order values are first seen, and the same value always gets the same
token, across every request of the conversation. :class:`Vault` keeps them in
the gateway's state store (:mod:`llm_gateway.state`), under its own namespace:
in one process's bounded memory (``DLP_VAULT=memory``) or in Redis, shared by
every replica (``DLP_VAULT=redis``). The layout is one hash per conversation,
expiring ``ttl`` after its last write::

    n:{LABEL}   the last number given to the label
    f:{fp}      the token of the value with fingerprint fp (keyed HMAC, never the value)
    t:{token}   base64(nonce || AES-GCM ciphertext), bound to conversation and token
    count       how many tokens the conversation holds   (the cap)

Numbering runs in one atomic script per batch, so concurrent requests of one
conversation, on any replica, never share a number and never give one value
two tokens. The ciphertext needs the token as associated data, so it is
written in a second step, only for tokens that lack one (new tokens, or a
writer that died between the two steps).

The store holds only keyed fingerprints and AES-GCM ciphertexts (see
:mod:`llm_gateway.dlp.vault_crypto`). A ciphertext that fails authentication is
left out of :meth:`VaultSession.mapping` (its token stays a token) and logged,
never returned as garbage.

The conversation id is the only isolation between callers: the caller must
namespace it (tenant, principal, conversation) so one principal can never
name another's conversation.
"""

from __future__ import annotations

import functools
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from llm_gateway.dlp.vault_crypto import (
    ConversationCipher,
    VaultCipher,
    VaultError,
    VaultFull,
    VaultIntegrityError,
    VaultKeyError,
    VaultUnavailable,
)
from llm_gateway.dlp.vault_script import ASSIGN_TOKENS
from llm_gateway.state import Store, StoreError
from llm_gateway.state.store import ttl_ms

__all__ = [
    "DEFAULT_NAMESPACE",
    "Vault",
    "VaultError",
    "VaultFull",
    "VaultIntegrityError",
    "VaultKeyError",
    "VaultSession",
    "VaultUnavailable",
    "format_token",
    "token_label",
]

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "vault"
DEFAULT_TTL_SECONDS = 86_400
DEFAULT_MAX_TOKENS_PER_CONVERSATION = 10_000
MAX_LABEL_LENGTH = 40
_NOT_LABEL = re.compile(r"[^A-Z0-9_]+")


@functools.lru_cache(maxsize=4096)
def token_label(label: str) -> str:
    """The label as it may appear inside a token or a ``<..._REDACTED>`` marker.

    Upper case, ``[A-Z0-9_]`` only, starting with a letter, at most 40
    characters: the shape :mod:`llm_gateway.dlp.restore` recognises. A custom
    rule's label such as ``internal-ip`` becomes ``INTERNAL_IP``. Cached: a
    deployment has a few dozen labels, and this runs for every span.
    """
    cleaned = _NOT_LABEL.sub("_", label.upper()).strip("_")[:MAX_LABEL_LENGTH]
    if not cleaned or not cleaned[0].isalpha():
        cleaned = ("X_" + cleaned)[:MAX_LABEL_LENGTH]
    return cleaned


def format_token(label: str, number: int) -> str:
    """``<LABEL_n>`` for an already sanitised label (see :func:`token_label`)."""
    return f"<{label}_{number}>"


class VaultSession(ABC):
    """The tokens of one conversation."""

    def __init__(self, conversation: str) -> None:
        self.conversation = conversation

    async def token_for(self, label: str, value: str) -> str:
        """The conversation's token for ``value``: the existing one, or the next number."""
        return (await self.tokens_for([(label, value)]))[0]

    @abstractmethod
    async def tokens_for(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """One token per ``(label, value)``, in order, in one round trip to the backend.

        Labels are sanitised with :func:`token_label`. Raises :class:`VaultFull`
        when the conversation is at its cap, :class:`VaultUnavailable` when the
        backend does not answer.
        """

    @abstractmethod
    async def mapping(self) -> dict[str, str]:
        """Every authentic token -> value of the conversation (empty once expired)."""

    @abstractmethod
    async def values(self, tokens: Iterable[str]) -> dict[str, str]:
        """Token -> value for the given tokens that the vault holds and can authenticate."""


class Vault:
    """Conversations in a :class:`~llm_gateway.state.Store`, under ``namespace``.

    ``owns_store``: :meth:`aclose` closes the store too (a store built for the
    vault alone); a store shared with the rest of the gateway is closed by its
    owner. :meth:`session` is cheap and does no I/O.
    """

    def __init__(
        self,
        store: Store,
        key: bytes,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_tokens_per_conversation: int = DEFAULT_MAX_TOKENS_PER_CONVERSATION,
        namespace: str = DEFAULT_NAMESPACE,
        owns_store: bool = False,
    ) -> None:
        self._cipher = VaultCipher(key)  # validates the key now, not on the first request
        self.ttl = ttl
        self.ttl_ms = ttl_ms(ttl)
        self.max_tokens = max_tokens_per_conversation
        self.store = store.namespaced(namespace)
        self._root = store
        self._owns_store = owns_store

    def session(self, conversation: str) -> VaultSession:
        return _StoreSession(self, conversation, self._cipher.conversation(conversation))

    async def aclose(self) -> None:
        if self._owns_store:
            await self._root.aclose()


class _StoreSession(VaultSession):
    def __init__(self, vault: Vault, conversation: str, cipher: ConversationCipher):
        super().__init__(conversation)
        self._vault = vault
        self._cipher = cipher

    async def tokens_for(self, items: Sequence[tuple[str, str]]) -> list[str]:
        if not items:
            return []
        vault = self._vault
        args: list[str | int] = [vault.ttl_ms, vault.max_tokens]
        labels_values = [(token_label(label), value) for label, value in items]
        for label, value in labels_values:
            args += (self._cipher.fingerprint(label, value), label)
        try:
            reply = await vault.store.run(ASSIGN_TOKENS, [self.conversation], args)
        except StoreError as exc:
            raise VaultUnavailable("the vault's store did not answer") from exc
        assert isinstance(reply, list)
        tokens = [raw.decode() for raw in reply[0::2] if isinstance(raw, bytes)]
        if len(tokens) != len(items):
            raise VaultUnavailable("the vault's store gave a malformed answer")
        if "" in tokens:
            raise VaultFull("the conversation holds as many tokens as the vault allows")
        to_seal = {
            f"t:{token}": self._cipher.seal(token, value).encode()
            for token, needs, (_, value) in zip(tokens, reply[1::2], labels_values, strict=True)
            if needs
        }
        if to_seal:
            try:
                await vault.store.hash_set(self.conversation, to_seal, ttl_s=vault.ttl)
            except StoreError as exc:
                raise VaultUnavailable("the vault's store did not answer") from exc
        return tokens

    async def mapping(self) -> dict[str, str]:
        try:
            stored = await self._vault.store.hash_get_all(self.conversation)
        except StoreError as exc:
            raise VaultUnavailable("the vault's store did not answer") from exc
        sealed = ((name[2:], blob) for name, blob in stored.items() if name.startswith("t:"))
        return open_entries(self._cipher, sealed)

    async def values(self, tokens: Iterable[str]) -> dict[str, str]:
        wanted = list(set(tokens))
        if not wanted:
            return {}
        try:
            stored = await self._vault.store.hash_get(self.conversation, [f"t:{t}" for t in wanted])
        except StoreError as exc:
            raise VaultUnavailable("the vault's store did not answer") from exc
        found = ((t, blob) for t, blob in zip(wanted, stored, strict=True) if blob is not None)
        return open_entries(self._cipher, found)


def open_entries(
    cipher: ConversationCipher, sealed: Iterable[tuple[str, str | bytes]]
) -> dict[str, str]:
    """Open every entry; entries that fail authentication are left out and logged."""
    opened: dict[str, str] = {}
    rejected = 0
    for token, blob in sealed:
        try:
            opened[token] = cipher.open(token, blob)
        except VaultIntegrityError:
            rejected += 1
    if rejected:
        logger.warning(
            "dlp vault: %d entr%s failed authentication (tampered, or another key); "
            "their tokens stay tokens",
            rejected,
            "y" if rejected == 1 else "ies",
        )
    return opened
