"""One request's record: what every recorder (audit trail, access log, budgets, metrics)
learns of a request once it is settled.

``Account`` settles a request once (tokens, cost, status) and builds one
:class:`RequestRecord` from its context, then hands it to each
:class:`Recorder` in turn. The record holds no text of the prompt or the
answer, only their SHA-256 digests and lengths, and no value DLP found, only
entity types, counts and actions: a recorder cannot leak what it never gets.
This module depends on nothing else of the gateway's, so that every layer may
use it and none has to import the pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from llm_gateway.chat import ChatRequest


@dataclass(slots=True)
class AttemptRecord:
    """One try at a deployment, in the order they were made."""

    model: str
    provider: str
    upstream_model: str
    status: int | None
    error_code: str | None
    latency_ms: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "status": self.status,
            "error_code": self.error_code,
            "latency_ms": self.latency_ms,
        }


@dataclass(slots=True)
class Digest:
    """A text's SHA-256 and length in characters: enough to match, nothing to read."""

    sha256: str
    chars: int

    @classmethod
    def of(cls, texts: Iterable[str]) -> Digest:
        sha = hashlib.sha256()
        chars = 0
        for text in texts:
            sha.update(text.encode("utf-8", errors="surrogatepass"))
            sha.update(b"\x00")
            chars += len(text)
        return cls(sha.hexdigest(), chars)


@dataclass(slots=True)
class RequestRecord:
    """A settled request, as every recorder sees it; recorders read it and never change it.

    (Not a frozen dataclass: freezing doubles the cost of building one, which
    every request pays.)
    """

    request_id: str
    timestamp: datetime
    endpoint: str  # a front door ("openai", ...) or a management action ("models.list", ...)
    # Who: None before authentication succeeded.
    user_id: str | None
    role: str | None
    team: str | None
    tenant: str | None
    key_id: str | None
    auth_method: str | None
    # What was asked, and who answered it (the last attempt's deployment).
    model_requested: str | None
    model: str | None
    provider: str | None
    upstream_model: str | None
    stream: bool
    attempts: tuple[AttemptRecord, ...]
    # How it ended.
    status: int
    error_code: str | None
    latency_ms: float
    tokens_in: int
    tokens_out: int
    tokens_estimated: bool
    cost_usd: float
    prompt: Digest | None
    response: Digest | None
    # The policy's decision (None if it was not asked) and what DLP found.
    policy_decision: str | None  # allow, deny, error
    policy_reasons: tuple[str, ...]
    policy_revision: str | None
    policy_eval_us: float | None
    dlp_action: str | None  # the strongest action taken
    dlp_findings: tuple[dict[str, Any], ...]  # {entity, direction, count, action}
    queued_ms: float | None = None  # how long the rate limit's queue held the request
    # How the first model tried was chosen: "requested", "chain", "sticky", "rule", a
    # strategy's name, or "experiment:<name>:<arm>" (what compares an experiment's arms).
    route: str | None = None
    # A confirmation this request opened, answered or released: "<id>:<event>" (challenged,
    # confirmed, cancelled, details, pending, refused).
    confirmation: str | None = None
    # How much of the request NER read, and of the answer when policy asked for it:
    # "full", "partial (time budget)", "skipped (extra not installed)", "off";
    # "full; answer: partial (size cap)". None: DLP did not run.
    dlp_ner: str | None = None
    # The answer's check against its tool results: counts and failed checks, no values
    # ("grounded=false score=0.50 ... failed=contradiction"; " retried" when asked twice).
    grounding: str | None = None
    # A stream's time to its first text or tool-call delta (None: not a stream, or none came).
    first_token_ms: float | None = None
    # Each stage that passed the request on, and the seconds it took to (see
    # RequestContext.marks): for the metrics.
    stages: tuple[tuple[str, float], ...] = ()
    # The request as it left (DLP applied) and the answer before DLP restored anything:
    # references, for a recorder that stores content (AUDIT_STORE_CONTENT=redacted); never
    # in the record's repr, which a log line may show.
    request: ChatRequest | None = field(default=None, repr=False)
    answer: str | None = field(default=None, repr=False)

    @property
    def tokens_used(self) -> int:
        return self.tokens_in + self.tokens_out


class Recorder(Protocol):
    """Something that keeps or counts settled requests.

    ``record`` is awaited before the answer completes (the audit trail commits
    its row then); a recorder that only counts should return at once.
    """

    async def record(self, record: RequestRecord) -> None: ...


@runtime_checkable
class Journal(Protocol):
    """A recorder that must know of a request before it is served (the audit trail).

    ``admit`` refuses a request up front (raising) when its record could not be
    kept; ``opened`` is awaited before a stream's first byte is released, with
    the record as it stands then, so that a stream cut by a crash is on record.
    """

    def admit(self) -> None: ...

    async def opened(self, record: RequestRecord) -> None: ...
