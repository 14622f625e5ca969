"""The state of one request as it flows through the pipeline's stages.

Stages read what earlier stages wrote and add their own part; nothing else
carries request data. Fields are filled in pipeline order, so a field being
``None`` also tells how far the request got (useful in the audit record).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.chat import ChatRequest, FinishReason, Outcome, Usage
from llm_gateway.config import Deployment
from llm_gateway.dlp.report import DlpReport
from llm_gateway.errors import GatewayError
from llm_gateway.policy.decision import Decision


class RequestParser(Protocol):
    """A front door's translation of its wire format into the canonical request."""

    def __call__(self, body: bytes) -> ChatRequest: ...


def new_request_id() -> str:
    """128 random bits as 32 hex digits (the shape of a UUID's hex, at a quarter of the cost)."""
    return os.urandom(16).hex()


@dataclass(slots=True)
class RequestContext:
    endpoint: str  # the front door: "openai", "anthropic" or "native"
    credentials: Credentials
    read_body: Callable[[], Awaitable[bytes]]
    parse: RequestParser
    request_id: str = field(default_factory=new_request_id)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)

    client_ip: str | None = None
    conversation_id: str | None = None  # X-Conversation-Id: scopes reversible DLP tokens

    principal: Principal | None = None  # 1 authenticate
    chat: ChatRequest | None = None  # parse
    # 2 authorize: the name asked for, as the audit row may store it (a name the
    # gateway does not serve is the caller's free text: only its digest is kept).
    model_requested: str | None = None
    decision: Decision | None = None  # 2 authorize
    dlp: DlpReport | None = None  # 4 inspect (and 7, the answer)
    deployment: Deployment | None = None  # 5 route

    # Filled by accounting as the outcome becomes known.
    status: int = 200
    error: GatewayError | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    response_text: str | None = None
    # The answer as it was before DLP restored tokens for an authorised caller:
    # what the audit row digests, so that it never covers restored values.
    response_before_restore: list[str] | None = None

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


Next = Callable[[RequestContext], Awaitable[Outcome]]


class Stage(Protocol):
    """One step of the pipeline. It may act before and after the stages it wraps."""

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome: ...
