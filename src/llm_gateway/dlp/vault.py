"""The reversible-redaction vault: which token stands for which value, per conversation.

A conversation's tokens (``<PERSON_1>``, ``<SSN_2>``) are numbered per label in
the order values are first seen, and the same value always gets the same
token, across every request of the conversation. Two backends behind one
interface:

- :class:`InProcessVault` (embedded default): a bounded dict with TTL expiry and
  least-recently-used eviction of whole conversations.
- :class:`~llm_gateway.dlp.vault_redis.RedisVault`: one Redis hash per
  conversation, shared by every replica.

Both store only keyed fingerprints and AES-GCM ciphertexts (see
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
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llm_gateway.dlp.vault_crypto import (
    ConversationCipher,
    VaultCipher,
    VaultError,
    VaultFull,
    VaultIntegrityError,
    VaultKeyError,
    VaultUnavailable,
)

__all__ = [
    "InProcessVault",
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


class Vault(Protocol):
    """A store of conversations; :meth:`session` is cheap and does no I/O."""

    def session(self, conversation: str) -> VaultSession: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Conversation:
    expires_at: float
    counters: dict[str, int] = field(default_factory=dict)
    by_fingerprint: dict[str, str] = field(default_factory=dict)
    sealed: dict[str, str] = field(default_factory=dict)
    size: int = 0


# Rough bytes an entry (two dict slots, three short strings) and a conversation
# (its dataclass, three dicts, an OrderedDict slot) cost in CPython.
_ENTRY_OVERHEAD = 300
_CONVERSATION_OVERHEAD = 800


class InProcessVault:
    """The embedded vault: conversations in one process's memory, bounded.

    Memory is bounded by ``max_bytes`` (an estimate of the entries' footprint):
    when it is exceeded, whole conversations are evicted, least recently used
    first. A conversation expires ``ttl`` seconds after its last write.
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        key: bytes,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_bytes: int = 64 * 1024 * 1024,
        max_tokens_per_conversation: int = DEFAULT_MAX_TOKENS_PER_CONVERSATION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cipher = VaultCipher(key)  # validates the key now, not on the first request
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_tokens = max_tokens_per_conversation
        self._clock = clock
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._bytes = 0

    def session(self, conversation: str) -> VaultSession:
        return _InProcessSession(self, conversation, self._cipher.conversation(conversation))

    async def aclose(self) -> None:
        self._conversations.clear()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        """The estimated footprint of every stored entry."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._conversations)

    def _get(self, conversation: str) -> _Conversation | None:
        entry = self._conversations.get(conversation)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._drop(conversation)
            return None
        self._conversations.move_to_end(conversation)
        return entry

    def _get_for_write(self, conversation: str) -> _Conversation:
        now = self._clock()
        self._sweep(now)
        entry = self._get(conversation)
        if entry is None:
            entry = _Conversation(expires_at=0.0)
            self._conversations[conversation] = entry
            self._grew(entry, _CONVERSATION_OVERHEAD)
        entry.expires_at = now + self.ttl
        return entry

    def _sweep(self, now: float) -> None:
        """Drop expired conversations from the least recently used end; amortised O(1)."""
        conversations = self._conversations
        while conversations:
            oldest = next(iter(conversations))
            if conversations[oldest].expires_at > now:
                return
            self._drop(oldest)

    def _grew(self, entry: _Conversation, added: int) -> None:
        entry.size += added
        self._bytes += added
        while self._bytes > self.max_bytes and len(self._conversations) > 1:
            oldest = next(iter(self._conversations))
            self._drop(oldest)

    def _drop(self, conversation: str) -> None:
        entry = self._conversations.pop(conversation, None)
        if entry is not None:
            self._bytes -= entry.size


class _InProcessSession(VaultSession):
    def __init__(self, vault: InProcessVault, conversation: str, cipher: ConversationCipher):
        super().__init__(conversation)
        self._vault = vault
        self._cipher = cipher

    async def tokens_for(self, items: Sequence[tuple[str, str]]) -> list[str]:
        if not items:
            return []
        # No await between reading and writing the conversation: atomic on the event loop.
        vault = self._vault
        entry = vault._get_for_write(self.conversation)
        tokens: list[str] = []
        added = 0
        for raw_label, value in items:
            label = token_label(raw_label)
            fingerprint = self._cipher.fingerprint(label, value)
            token = entry.by_fingerprint.get(fingerprint)
            if token is None:
                if len(entry.sealed) >= vault.max_tokens:
                    raise VaultFull("the conversation holds as many tokens as the vault allows")
                number = entry.counters.get(label, 0) + 1
                entry.counters[label] = number
                token = format_token(label, number)
                sealed = self._cipher.seal(token, value)
                entry.by_fingerprint[fingerprint] = token
                entry.sealed[token] = sealed
                added += _ENTRY_OVERHEAD + len(fingerprint) + 2 * len(token) + len(sealed)
            tokens.append(token)
        if added:
            vault._grew(entry, added)
        return tokens

    async def mapping(self) -> dict[str, str]:
        entry = self._vault._get(self.conversation)
        return {} if entry is None else open_entries(self._cipher, entry.sealed.items())

    async def values(self, tokens: Iterable[str]) -> dict[str, str]:
        entry = self._vault._get(self.conversation)
        if entry is None:
            return {}
        found = ((t, entry.sealed[t]) for t in set(tokens) if t in entry.sealed)
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
