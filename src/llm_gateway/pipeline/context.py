"""The state of one request as it flows through the pipeline's stages.

Stages read what earlier stages wrote and add their own part; nothing else
carries request data. A context is an envelope every request has (ids, the
caller, the decision, the DLP report, the attempts made, the outcome's status,
usage and error) around a typed payload: a :class:`ChatCall` for the front
doors, an :class:`ActionCall` for the management endpoints (listing models,
scanning text; the audit, usage, confirmation and admin endpoints to come).
Fields are filled in pipeline order, so a field being ``None`` also tells how
far the request got (useful in the audit record).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.chat import ChatRequest, ChatResponse, EventStream, Usage
from llm_gateway.config import Deployment
from llm_gateway.dlp.report import DlpReport
from llm_gateway.errors import GatewayError
from llm_gateway.grounding.model import Verdict
from llm_gateway.policy.decision import Decision
from llm_gateway.ratelimit import Admission
from llm_gateway.routing import Resolution


class RequestParser(Protocol):
    """A front door's translation of its wire format into the canonical request."""

    def __call__(self, body: bytes) -> ChatRequest: ...


def new_request_id() -> str:
    """128 random bits as 32 hex digits (the shape of a UUID's hex, at a quarter of the cost)."""
    return os.urandom(16).hex()


@dataclass(slots=True)
class Challenge:
    """The answer is held until a human confirms: what each front door renders instead.

    ``text`` is the assistant message any chat UI shows; ``confirmation`` its
    machine-readable form (id, action, scope, phrase, expiry...), placed where
    each wire format has room for it, with the id in ``x-confirmation-id``.
    """

    confirmation_id: str
    text: str
    confirmation: dict[str, Any]
    usage: Usage | None = None  # the model's, when a model answered (a withheld tool call)


@dataclass(slots=True)
class ActionResult:
    """A management action's answer: a JSON-ready value (dicts, lists, strings, numbers),
    or a document the route sends as it is (a report's HTML or PDF)."""

    body: Any


Outcome = ChatResponse | EventStream | Challenge | ActionResult


@dataclass(slots=True)
class ChatCall:
    """The payload of a call to a model through a front door."""

    parse: RequestParser
    request: ChatRequest | None = None  # parse
    # authorize: the name asked for, as the audit row may store it (a name the
    # gateway does not serve is the caller's free text: only its digest is kept).
    model_requested: str | None = None
    resolution: Resolution | None = None  # authorize: the candidates, best first
    route: str | None = None  # route: how the first candidate was chosen (see routing.Plan)
    stale: bool = False  # route: every model failed; a cached answer is served (x-gateway-cache)
    strategy: str | None = None  # the strategy the caller asks auto to use (x-gateway-strategy)
    confirmation: str | None = None  # confirm: "<id>:<event>" (challenged, confirmed, ...)
    released: bool = False  # confirm: a withheld answer, released (accounted when withheld)
    grounding: Verdict | None = None  # ground: the answer's check against its tool results
    grounding_retried: bool = False  # ground: the verdict is on the answer asked for again
    # The answer as it was before DLP restored tokens for an authorised caller:
    # what the audit row digests, so that it never covers restored values.
    response_before_restore: list[str] | None = None


@dataclass(slots=True)
class ActionCall:
    """The payload of a management action, decided by the policy as ``input.action``.

    ``targets`` are the objects the action is asked about, each decided on its
    own in one policy call (the models a listing may show, as
    ``input.request.model``; the scopes a usage read may cover, as
    ``input.request.scope``: ``target_field`` says which); ``permitted`` is
    the part of them the policy allows. Without targets (``None``) the action
    itself is decided, and a denial refuses it; ``subject`` then adds what it
    is about to the input (the confirmation an approval decides).
    """

    action: str  # "models.list", "dlp.scan", ...
    handler: ActionHandler
    targets: tuple[str, ...] | None = None
    target_field: Literal["model", "scope"] = "model"
    permitted: tuple[str, ...] = ()
    confirmation: str | None = None  # "<id>:<event>" of a confirmation the action acted on
    subject: SubjectLoader | None = None  # adds what the action is about to the policy's input
    grounding: str | None = None  # a grounding check's summary, for the audit row


@dataclass(slots=True)
class Attempt:
    """One try at a deployment: what the audit row's ``attempts`` lists, in order."""

    deployment: Deployment
    status: int | None = None  # None until known; the answer's status or the error's
    error_code: str | None = None
    latency_ms: float | None = None


@dataclass(slots=True)
class RequestContext:
    endpoint: str  # "openai", "anthropic", "native", or the action's route
    credentials: Credentials
    read_body: Callable[[], Awaitable[bytes]]
    payload: ChatCall | ActionCall
    request_id: str = field(default_factory=new_request_id)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)

    client_ip: str | None = None
    conversation_id: str | None = None  # X-Conversation-Id: scopes reversible DLP tokens
    region: str | None = None  # the caller's region, for geographic routing
    environment: str | None = None  # x-environment: what a confirmation rule's environments name
    mfa_code: str | None = None  # x-gateway-mfa: a TOTP code for a confirmation that needs one
    # The request's headers, for the request span only (with tracing on): the caller's
    # W3C traceparent and tracestate. Stages read what the front door copied out above.
    headers: Mapping[str, str] | None = None

    principal: Principal | None = None  # 1 authenticate
    decision: Decision | None = None  # 2 authorize
    limits: Admission | None = None  # 3 limit: the windows found, for the headers
    dlp: DlpReport | None = None  # 4 inspect (and 7, the answer)
    attempts: list[Attempt] = field(default_factory=list)  # 5 route, one per try

    # Filled by accounting as the outcome becomes known.
    status: int = 200
    error: GatewayError | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    response_text: str | None = None
    first_token_ms: float | None = None  # a stream's first text or tool-call delta
    # When each stage was first entered (perf_counter), in the pipeline's order, and the
    # stages' names: a stage's time is from its start to the next one's (its own work on
    # the way in; the answer's way back is not in it).
    marks: list[float] = field(default_factory=list)
    stage_names: tuple[str, ...] = ()

    def mark(self, index: int) -> None:
        """Stage ``index`` starts (a later entry, as a failover's next call, is not one)."""
        if len(self.marks) == index:
            self.marks.append(time.perf_counter())

    def stage_seconds(self) -> tuple[tuple[str, float], ...]:
        """Each stage that passed the request on, and how long it took to."""
        marks, names = self.marks, self.stage_names
        return tuple((names[i], marks[i + 1] - marks[i]) for i in range(len(marks) - 1))

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    @property
    def call(self) -> ChatCall:
        """The chat payload; only the chat stages ask, and only for chat requests."""
        assert isinstance(self.payload, ChatCall), "a chat stage ran on a management action"
        return self.payload

    @property
    def chat(self) -> ChatRequest | None:
        """The canonical chat request, once parsed (None for a management action)."""
        return self.payload.request if isinstance(self.payload, ChatCall) else None

    @chat.setter
    def chat(self, request: ChatRequest | None) -> None:
        self.call.request = request

    @property
    def deployment(self) -> Deployment | None:
        """The deployment of the latest attempt: the one that answered, if any did."""
        return self.attempts[-1].deployment if self.attempts else None


Next = Callable[[RequestContext], Awaitable[Outcome]]
ActionHandler = Callable[[RequestContext], Awaitable[Any]]  # returns the action's answer body
#: What an action is about, read once the caller is known, for the policy's input
#: (``{"confirmation": {...}}``); empty when there is nothing to say.
SubjectLoader = Callable[[RequestContext], Awaitable[dict[str, Any]]]


class Stage(Protocol):
    """One step of the pipeline. It may act before and after the stages it wraps."""

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome: ...
