"""The request pipeline. Every call to a model goes through these stages, in this order.

    Account          8  tokens, cost, access log and audit record, whatever happens
    Authenticate     1  JWT or API key -> Principal, before the body is even read
    ParseRequest        the front door's wire format -> canonical ChatRequest
    Authorize        2  the name resolved to candidates (404 if none), then the Rego
                        policy -> Decision: deny (403), or allow with obligations
    Limit            3  rate limits and token and cost budgets, every scope at once
                        -> admitted (budgets reserved), queued, or 429
    Inspect          4  DLP on the request: block, redact or alert before it leaves;
                     7  and on the answer: scanned before release, tokens restored
    Confirm         4b  a risky prompt, or an answer's risky tool call, held for a
                        person's confirmation -> a challenge; a reply releases it
    Ground          4c  an answer checked against the conversation's tool results:
                        annotated with its verdict, or refused (and maybe retried)
    Route            5  the candidates ordered for this request (strategy, rules,
                        experiments, sticky sessions) and tried in turn, each an
                        attempt on the context; passed over when down, open or full
    CallProvider     6  one provider call -> ChatResponse or a started EventStream

Management actions (listing models, scanning text, and the audit, usage,
confirmation and admin endpoints to come) run through a shorter pipeline of
the same stages: Account, Authenticate, AuthorizeAction, then the action's own
handler (see :func:`build_action_pipeline`).

Each stage is ``async (ctx, call_next) -> Outcome``: it may act before calling
the rest of the pipeline and after it returns, and it may wrap a stream's
events, which is how the response-side stages see streamed answers. With
tracing on (``OTEL_ENABLED``), the request, each stage and each provider call
run in spans of their own (:mod:`.trace`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llm_gateway.auth import Authenticator
from llm_gateway.auth.inheritance import Inheritance
from llm_gateway.dlp.service import DlpService
from llm_gateway.observability.tracing import Tracing
from llm_gateway.pipeline.account import Account
from llm_gateway.pipeline.action import AuthorizeAction, RunAction
from llm_gateway.pipeline.authenticate import Authenticate
from llm_gateway.pipeline.authorize import Authorize
from llm_gateway.pipeline.call import CallProvider
from llm_gateway.pipeline.confirm import Confirm
from llm_gateway.pipeline.context import Next, Outcome, RequestContext, Stage
from llm_gateway.pipeline.ground import Ground
from llm_gateway.pipeline.inspect import Inspect
from llm_gateway.pipeline.limit import Limit
from llm_gateway.pipeline.parse import ParseRequest
from llm_gateway.pipeline.route import Route
from llm_gateway.policy import PolicyService
from llm_gateway.ratelimit import Limiter
from llm_gateway.records import Recorder
from llm_gateway.routing import Resolver, Router, StaleCache
from llm_gateway.settings import RoutingSettings
from llm_gateway.transport import Transport

__all__ = [
    "Pipeline", "RequestContext", "build_action_pipeline", "build_pipeline",
]  # fmt: skip


class Pipeline:
    """The stages composed once, at start-up, into a single callable.

    With ``tracing``, each stage runs in a span of its own, inside the request's
    (see :mod:`.trace`); without it, no span code is on the path at all.
    """

    def __init__(self, stages: Sequence[Stage], tracing: Tracing | None = None) -> None:
        self.stages = tuple(stages)
        self.tracing = tracing
        handler: Next = _end
        if tracing is not None:
            from llm_gateway.pipeline.trace import traced_chain  # imports the OpenTelemetry API

            handler = traced_chain(self.stages, handler, tracing.tracer)
        else:
            for index in reversed(range(len(self.stages))):
                handler = bind(self.stages[index], handler, index)
        self._handler = handler
        self.names = tuple(stage_name(stage) for stage in self.stages)

    async def __call__(self, ctx: RequestContext) -> Outcome:
        ctx.stage_names = self.names
        return await self._handler(ctx)


def build_pipeline(  # noqa: PLR0913 (keyword-only: the services the stages use)
    *,
    recorders: Sequence[Recorder],
    authenticator: Authenticator,
    policy: PolicyService,
    environment: str,
    limiter: Limiter | None,
    dlp: DlpService | None,
    resolver: Resolver,
    router: Router,
    routing: RoutingSettings,
    cache: StaleCache | None = None,
    confirm: Confirm | None = None,
    ground: Ground | None = None,
    transport: Transport,
    tracing: Tracing | None = None,
    inheritance: Inheritance | None = None,
) -> Pipeline:
    stages: list[Stage] = [
        Account(recorders),
        Authenticate(authenticator, inheritance),
        ParseRequest(),
        Authorize(policy, environment, resolver),
    ]
    if limiter is not None:  # RATE_LIMIT_ENABLED=false leaves it out
        stages.append(Limit(limiter))
    if dlp is not None:  # DLP_ENABLED=false leaves it out
        stages.append(Inspect(dlp))
    if confirm is not None:  # guardrails.yaml's hitl section holds risky prompts and tool calls
        stages.append(confirm)
    if ground is not None:  # guardrails.yaml's grounding section checks agents' answers
        stages.append(ground)
    stages += [Route(router, routing, cache), CallProvider(transport)]
    return Pipeline(stages, tracing)


def build_action_pipeline(
    *,
    recorders: Sequence[Recorder],
    authenticator: Authenticator,
    policy: PolicyService,
    environment: str,
    tracing: Tracing | None = None,
    inheritance: Inheritance | None = None,
) -> Pipeline:
    """The management actions' stages; each ends in the handler its payload names."""
    return Pipeline(
        [
            Account(recorders),
            Authenticate(authenticator, inheritance),
            AuthorizeAction(policy, environment),
            RunAction(),
        ],
        tracing,
    )


def bind(stage: Stage, call_next: Next, index: int) -> Next:
    """``stage``, the pipeline's ``index``-th, calling ``call_next``; its start is marked."""

    async def run(ctx: RequestContext) -> Outcome:
        ctx.mark(index)
        return await stage(ctx, call_next)

    return run


def stage_name(stage: Stage) -> str:
    """A stage's name in metrics: its class's, in snake case (``ParseRequest``: parse_request)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(stage).__name__).lower()


async def _end(ctx: RequestContext) -> Outcome:
    raise AssertionError("the last stage must produce an outcome")
