"""Pending confirmations in the state store: opened once, decided once, gone at expiry.

A confirmation is one JSON value under ``confirmation:<id>`` with the
challenge's TTL, bound to the tenant and user who asked and to their
conversation; a second key, ``conversation:<tenant>:<user>:<conversation>``,
points the conversation at its pending confirmation, so that the caller's
next message can answer it; and each tenant's open confirmations are listed
in a hash (id -> expiry) for the confirmations API. A last hash,
``expiring``, lists every confirmation still to be decided with who asked,
so that one that expires unanswered is noticed and audited
(:mod:`llm_gateway.hitl.expiry`). The hashes live as long as the longest
challenge may (:data:`INDEX_TTL_S`): their entries are removed one by one, as
confirmations are decided or found expired. With ``STATE_BACKEND=redis`` all
of it survives a gateway restart and can be answered through any replica.

Deciding is a compare-and-set from the value as it was read to the value
with its new status: of concurrent decisions (a confirmation and a
cancellation at once, or the same phrase sent twice) exactly one wins, and a
decided confirmation is never decided again (no replay).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from llm_gateway.state import Store

#: pending: waiting for its answer; approved: confirmed through the API, released to the
#: requester's next message; confirmed: released; cancelled: discarded.
Status = Literal["pending", "approved", "confirmed", "cancelled"]
OPEN: tuple[Status, ...] = ("pending", "approved")  # still to be released or cancelled


#: How long the indexes live after their last change: past the longest expires_seconds.
INDEX_TTL_S = 8 * 86_400.0
EXPIRING = "expiring"


def new_confirmation_id() -> str:
    """``cf_`` and 96 random bits: unguessable, so an id alone never grants anything."""
    return "cf_" + os.urandom(12).hex()


@dataclass(frozen=True, slots=True)
class Confirmation:
    id: str
    tenant: str | None
    user_id: str
    conversation: str | None
    rule: int  # the rule's place in guardrails.yaml's confirmation_required
    verb: str
    phrase: str
    scope: tuple[str, ...]
    environment: str | None
    requires_mfa: bool
    approvers: tuple[str, ...]
    created_at: float
    expires_at: float
    cooldown_until: float
    held: dict[str, Any] = field(default_factory=dict)  # what is released on confirmation
    status: Status = "pending"
    cost_impact_usd: float | None = None  # the estimated cost impact, when known

    def encode(self) -> bytes:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def decode(cls, raw: bytes) -> Confirmation:
        data = orjson.loads(raw)
        data["scope"], data["approvers"] = tuple(data["scope"]), tuple(data["approvers"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Expired:
    """What is known of a confirmation that expired undecided: enough for its audit event."""

    id: str
    tenant: str | None
    user_id: str
    rule: int
    verb: str
    items: int  # how many items its scope had
    expires_at: float

    @classmethod
    def decode(cls, confirmation_id: str, raw: bytes) -> Expired:
        data = orjson.loads(raw)
        return cls(confirmation_id, data["t"], data["u"], data["r"], data["v"], data["n"],
                   data["e"])  # fmt: skip


def _expiring(c: Confirmation) -> bytes:
    return orjson.dumps(
        {"t": c.tenant, "u": c.user_id, "r": c.rule, "v": c.verb, "n": len(c.scope),
         "e": c.expires_at}
    )  # fmt: skip


def _conversation_key(tenant: str | None, user_id: str, conversation: str) -> str:
    """The conversation's pointer: digests, so that no name can reach another's keys."""
    parts = "\x00".join((tenant or "", user_id, conversation)).encode()
    return "conversation:" + hashlib.blake2b(parts, digest_size=16).hexdigest()


def _tenant_key(tenant: str | None) -> str:
    return "tenant:" + hashlib.blake2b((tenant or "").encode(), digest_size=16).hexdigest()


class Confirmations:
    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def _ttl(self, confirmation: Confirmation) -> float:
        return max(confirmation.expires_at - self.clock(), 0.001)

    async def open(self, confirmation: Confirmation) -> None:
        """Keep a new pending confirmation, and point its conversation at it."""
        ttl = self._ttl(confirmation)
        await self.store.set(f"confirmation:{confirmation.id}", confirmation.encode(), ttl_s=ttl)
        index = _tenant_key(confirmation.tenant)
        expires = repr(confirmation.expires_at).encode()
        await self.store.hash_set(index, {confirmation.id: expires}, ttl_s=INDEX_TTL_S)
        await self.store.hash_set(
            EXPIRING, {confirmation.id: _expiring(confirmation)}, ttl_s=INDEX_TTL_S
        )
        if confirmation.conversation is not None:
            key = _conversation_key(
                confirmation.tenant, confirmation.user_id, confirmation.conversation
            )
            await self.store.set(key, confirmation.id.encode(), ttl_s=ttl)

    async def get(self, confirmation_id: str, *, tenant: str | None) -> Confirmation | None:
        """The confirmation, if it exists, has not expired and is the tenant's."""
        found = await self._read(confirmation_id)
        if found is None or found[1].tenant != tenant:
            return None
        return found[1]

    async def for_conversation(
        self, tenant: str | None, user_id: str, conversation: str
    ) -> Confirmation | None:
        """The conversation's pending confirmation, if any."""
        pointer = await self.store.get(_conversation_key(tenant, user_id, conversation))
        if pointer is None:
            return None
        found = await self.get(pointer.decode(), tenant=tenant)
        return found if found is not None and found.status in OPEN else None

    async def open_for_tenant(self, tenant: str | None) -> list[Confirmation]:
        """The tenant's open confirmations, oldest first."""
        index = _tenant_key(tenant)
        listed = await self.store.hash_get_all(index)
        now = self.clock()
        found = []
        for confirmation_id, expires in listed.items():
            confirmation = await self.get(confirmation_id, tenant=tenant)
            if confirmation is None or float(expires) <= now or confirmation.status not in OPEN:
                await self.store.hash_delete(index, confirmation_id)
                continue
            found.append(confirmation)
        return sorted(found, key=lambda c: c.created_at)

    async def decide(
        self,
        confirmation: Confirmation,
        status: Literal["approved", "confirmed", "cancelled"],
        *,
        unless: tuple[Status, ...] = ("confirmed", "cancelled"),
    ) -> Confirmation | None:
        """Move an open confirmation to ``status``; None if it was decided (or expired)
        meanwhile, or is in a state of ``unless``: only one decision ever wins."""
        found = await self._read(confirmation.id)
        if found is None or found[1].status in unless or found[1].status == status:
            return None
        raw, current = found
        decided = replace(current, status=status)
        key = f"confirmation:{current.id}"
        if not await self.store.compare_and_set(
            key, raw, decided.encode(), ttl_s=self._ttl(current)
        ):
            return None
        if status != "approved":  # an approved one waits for the requester's next message
            await self.store.hash_delete(EXPIRING, current.id)
            await self.store.hash_delete(_tenant_key(current.tenant), current.id)
            if current.conversation is not None:
                await self.store.delete(
                    _conversation_key(current.tenant, current.user_id, current.conversation)
                )
        return decided

    async def expired(self) -> list[Expired]:
        """The confirmations that expired undecided since the last call, each returned once
        (of several replicas asking at once, one gets each)."""
        now = self.clock()
        listed = await self.store.hash_get_all(EXPIRING)
        found = []
        for confirmation_id, raw in listed.items():
            entry = Expired.decode(confirmation_id, raw)
            if entry.expires_at <= now and await self.store.hash_delete(EXPIRING, confirmation_id):
                await self.store.hash_delete(_tenant_key(entry.tenant), confirmation_id)
                found.append(entry)
        return found

    async def pending(self) -> list[Confirmation]:
        """Every tenant's confirmations still waiting for their answer (not approved, decided
        or expired), oldest first: what the stale-confirmation alert looks at."""
        listed = await self.store.hash_get_all(EXPIRING)
        found = []
        for confirmation_id in listed:
            read = await self._read(confirmation_id)
            if read is not None and read[1].status == "pending":
                found.append(read[1])
        return sorted(found, key=lambda c: c.created_at)

    async def _read(self, confirmation_id: str) -> tuple[bytes, Confirmation] | None:
        raw = await self.store.get(f"confirmation:{confirmation_id}")
        if raw is None:
            return None
        confirmation = Confirmation.decode(raw)
        if confirmation.expires_at <= self.clock():
            return None
        return raw, confirmation
