"""The typed answers of the gateway's API, as pydantic models.

Every model accepts fields it does not know (``extra="allow"``): a newer
gateway may add some without breaking an older SDK. Fields that may be
absent default to ``None`` or empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatChunk",
    "ChatResponse",
    "ChatSummary",
    "Confirmation",
    "GroundingClaim",
    "GroundingPhrase",
    "GroundingUncited",
    "GroundingVerdict",
    "LimitScope",
    "LimitState",
    "Limits",
    "ModelInfo",
    "ScanFinding",
    "ScanResult",
    "UsageReport",
    "UsageRow",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Confirmation(_Model):
    """A confirmation challenge: what waits for a person, and the phrase that releases it."""

    id: str
    status: str | None = None
    action: str | None = Field(None, description="The verb the rule matched (delete, ...)")
    scope: list[str] = Field(default_factory=list, description="What the action applies to")
    environment: str | None = None
    risk: str | None = None
    phrase: str = Field(description="What to type (or pass to confirm()) to proceed")
    expires_at: datetime | None = None
    requires_mfa: bool = False
    approvers: list[str] = Field(default_factory=list)
    cost_impact_usd: float | None = None
    requested_by: str | None = None


class GroundingClaim(_Model):
    """One checkable claim of an answer, and what the tool results say of it."""

    start: int
    end: int
    text: str
    kind: str
    status: str = Field(description="supported, derived, unsupported or contradicted")
    tool_call_id: str | None = None
    found: Any = None
    explanation: str | None = None


class GroundingPhrase(_Model):
    """A speculative or blocked phrase found in the answer."""

    start: int
    end: int
    phrase: str
    source: str


class GroundingUncited(_Model):
    """A claim without a citation of a tool that supports it, or citing an unknown tool."""

    start: int
    end: int
    text: str
    reason: str
    tool: str | None = None


class GroundingVerdict(_Model):
    """Whether an answer is grounded in its conversation's tool results, and why not."""

    grounded: bool
    score: float
    claims: list[GroundingClaim] = Field(default_factory=list)
    unsupported: int = 0
    contradictions: int = 0
    speculative: list[GroundingPhrase] = Field(default_factory=list)
    uncited: list[GroundingUncited] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    truncated: bool = False


class ChatResponse(_Model):
    """The answer to :meth:`Gateway.chat`: the text and the gateway's metadata, flattened.

    ``confirmation`` is set when the gateway held the request for a person
    (``content`` is then the challenge's text); ``grounding`` when the answer
    was checked against tool results.
    """

    model: str
    content: str
    tokens_used: int = 0
    cost: float = 0.0
    pii_detected: bool = False
    pii_entities: list[str] = Field(default_factory=list)
    request_id: str | None = None
    confirmation: Confirmation | None = None
    grounding: GroundingVerdict | None = None

    @classmethod
    def from_wire(cls, body: Any, request_id: str | None = None) -> ChatResponse:
        """From the native answer ``{"model", "response", "metadata": {...}}``."""
        metadata = body.get("metadata") or {}
        return cls.model_validate(
            {
                **metadata,
                "model": body.get("model"),
                "content": body.get("response"),
                "request_id": metadata.get("request_id") or request_id,
            }
        )


class ChatChunk(_Model):
    """One piece of a streamed answer's text."""

    type: Literal["delta"] = "delta"
    text: str


class ChatSummary(_Model):
    """The last item of a stream: the native ``done`` event's metadata, and the whole text.

    ``text`` is empty (so ``print(item.text, end="")`` over a whole stream prints
    the answer once); ``content`` is everything the stream's chunks carried.
    ``confirmation_id`` is set when the streamed answer is a confirmation challenge.
    """

    type: Literal["done"] = "done"
    text: str = ""
    content: str = ""
    model: str
    tokens_used: int = 0
    cost: float = 0.0
    pii_detected: bool = False
    pii_entities: list[str] = Field(default_factory=list)
    request_id: str | None = None
    confirmation_id: str | None = None
    grounding: GroundingVerdict | None = None


class ModelInfo(_Model):
    """A name the caller may ask for: a model, a fallback chain, or ``auto``."""

    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None
    demo: bool = False
    kind: str = "model"


class ScanFinding(_Model):
    """What DLP found, where (character offsets), and what it would do; never the value."""

    entity: str
    category: str
    start: int
    end: int
    score: float
    rule: str
    action: str


class ScanResult(_Model):
    """The answer to :meth:`Gateway.scan`."""

    findings: list[ScanFinding] = Field(default_factory=list)
    ner: str | None = None
    redacted_text: str | None = None


class UsageRow(_Model):
    """One group's totals (``group`` None: rows without a value, or the grand total)."""

    group: str | None = None
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_used: int = 0
    cost_usd: float = 0.0


class UsageReport(_Model):
    """The answer to :meth:`Gateway.usage`: totals per group over ``[start, end)``."""

    group_by: str
    scope: str
    start: datetime
    end: datetime
    rows: list[UsageRow] = Field(default_factory=list)
    total: UsageRow


class AuditRecord(_Model):
    """One audit row: who asked what of which model, the decision, what DLP found, the
    outcome; digests and lengths of the texts, never the texts (every column is kept)."""

    request_id: str
    timestamp: datetime
    endpoint: str
    status: int
    user_id: str | None = None
    tenant: str | None = None
    model: str | None = None
    error_code: str | None = None
    policy_decision: str | None = None


class AuditPage(_Model):
    """The answer to :meth:`Gateway.audit`: rows, newest first, and the next page's cursor."""

    rows: list[AuditRecord] = Field(default_factory=list)
    next_cursor: str | None = None


class LimitState(_Model):
    """One window or budget: its limit, what is used, what remains, and when it resets."""

    limit: float | None = None
    used: float | None = None
    remaining: float | None = None
    reset_seconds: int | None = None


class LimitScope(_Model):
    """One of the caller's scopes (user, key, ip, tenant, team) and its limits."""

    scope: str
    id: str | None = None
    requests_per_minute: LimitState | None = None
    tokens_per_month: LimitState | None = None
    cost_per_month_usd: LimitState | None = None


class Limits(_Model):
    """The answer to :meth:`Gateway.limits`."""

    enabled: bool
    scopes: list[LimitScope] = Field(default_factory=list)
