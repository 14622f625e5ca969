"""The pipeline's spans, with tracing on (``OTEL_ENABLED``): a request, its stages, its attempts.

    chat gpt-emu                SERVER    the request, until its answer (a stream's last event)
      Account                   INTERNAL  each stage, until it hands the answer back
        Authenticate
          ParseRequest
            ...
              Route
                chat gpt-4o-mini  CLIENT  each upstream attempt (the CallProvider stage),
                                          until its answer or its stream's last event

:class:`~llm_gateway.pipeline.Pipeline` builds this chain instead of the plain
one only when tracing is on, so that a gateway without traces runs exactly the
code it ran before. The request span continues the caller's trace when the
request carries a W3C ``traceparent``.

Attempt spans follow OpenTelemetry's GenAI conventions for a client inference
call (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.*``,
``gen_ai.response.finish_reasons``, ``gen_ai.usage.*``, ``server.*``,
``error.type``); the gateway's own attributes are under ``llm_gateway.``. There
is no ``gen_ai.response.model``: the adapters keep the gateway's name for the
model, not the one the provider reports. The request span keeps the
accounted tokens under ``llm_gateway.`` names rather than ``gen_ai.usage.*``,
so that a backend adding up usage over a trace counts each call once.

What a span may carry: ids, names the configuration gave (models, providers,
hosts), counts, sampling options and error codes. Never the text of a prompt,
an answer, a tool call or a header, nor a model name the caller wrote that the
gateway does not serve; an error sets ``error.type`` (the gateway's error code,
else the exception's class name), and no exception message or traceback is
recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from llm_gateway.chat import ChatRequest, ChatResponse, EventStream, StreamEnd, StreamEvent, Usage
from llm_gateway.config import Deployment
from llm_gateway.errors import GatewayError
from llm_gateway.pipeline.call import CallProvider
from llm_gateway.pipeline.context import ChatCall, Next, Outcome, RequestContext, Stage

Attributes = dict[str, AttributeValue]
#: How a stream ends when its consumer stops reading it (the caller went away): no failure.
_LEFT = (GeneratorExit, asyncio.CancelledError)

_PROPAGATOR = TraceContextTextMapPropagator()


def traced_chain(stages: Sequence[Stage], end: Next, tracer: Tracer) -> Next:
    """``stages`` bound in order as :class:`Pipeline` binds them, each in its span, the whole
    in the request's span; the provider call is the attempt's span. A request the sampler
    leaves out runs the plain chain: only its decision is paid for."""
    from llm_gateway.pipeline import bind  # the package is loaded: it builds this chain

    traced = plain = end
    for index in reversed(range(len(stages))):
        stage = stages[index]
        if isinstance(stage, CallProvider):
            traced = _marked(_attempt(stage, traced, tracer), index)
        else:
            traced = _marked(_stage(stage, traced, tracer), index)
        plain = bind(stage, plain, index)
    return _request(traced, plain, tracer)


def _marked(link: Next, index: int) -> Next:
    """``link``, its start marked as :func:`~llm_gateway.pipeline.bind` marks a stage's."""

    async def run(ctx: RequestContext) -> Outcome:
        ctx.mark(index)
        return await link(ctx)

    return run


# --- the request -------------------------------------------------------------


def _request(call_next: Next, plain: Next, tracer: Tracer) -> Next:
    async def run(ctx: RequestContext) -> Outcome:
        parent = _PROPAGATOR.extract(ctx.headers) if ctx.headers is not None else None
        chat = isinstance(ctx.payload, ChatCall)
        attributes: Attributes = {
            "llm_gateway.request_id": ctx.request_id, "llm_gateway.endpoint": ctx.endpoint,
        }  # fmt: skip
        name = "chat" if chat else ctx.endpoint
        span = tracer.start_span(name, parent, kind=SpanKind.SERVER, attributes=attributes)
        if not span.is_recording():  # not sampled: nothing to record, nothing to propagate
            return await plain(ctx)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            outcome = await call_next(ctx)
        except BaseException as exc:
            _settled(span, ctx)
            _failed(span, exc, client=False)
            span.end()
            raise
        finally:
            otel_context.detach(token)
        if isinstance(outcome, EventStream):
            return _watched(outcome, lambda: _request_ended(span, ctx), span, client=False)
        _request_ended(span, ctx)
        return outcome

    return run


def _request_ended(span: Span, ctx: RequestContext) -> None:
    _settled(span, ctx)
    if ctx.error is not None:  # a stream the gateway cut (its shutdown), or one that failed
        _failed(span, ctx.error, client=False)
    span.end()


def _settled(span: Span, ctx: RequestContext) -> None:
    """What the request came to, as accounting settled it."""
    attributes: Attributes = {"http.response.status_code": ctx.status}
    call = ctx.payload if isinstance(ctx.payload, ChatCall) else None
    if call is not None and call.resolution is not None:  # a name the gateway serves
        span.update_name(f"chat {call.resolution.requested}")
        attributes["llm_gateway.model_requested"] = call.resolution.requested
    if call is not None and call.stale:
        attributes["llm_gateway.cache"] = "stale"
    if ctx.attempts:
        attributes["llm_gateway.model"] = ctx.attempts[-1].deployment.name
        attributes["llm_gateway.attempts"] = len(ctx.attempts)
    if ctx.usage is not None:
        attributes["llm_gateway.tokens.input"] = ctx.usage.input_tokens
        attributes["llm_gateway.tokens.output"] = ctx.usage.output_tokens
        attributes["llm_gateway.tokens.estimated"] = ctx.usage.estimated
        attributes["llm_gateway.cost_usd"] = ctx.cost_usd
    span.set_attributes(attributes)


# --- the stages --------------------------------------------------------------


def _stage(stage: Stage, call_next: Next, tracer: Tracer) -> Next:
    name = type(stage).__name__

    async def run(ctx: RequestContext) -> Outcome:
        span = tracer.start_span(name)  # the current span's child
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await stage(ctx, call_next)
        except BaseException as exc:
            _failed(span, exc, client=False)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    return run


# --- the attempts ------------------------------------------------------------


def _attempt(stage: CallProvider, call_next: Next, tracer: Tracer) -> Next:
    servers: dict[str, Attributes] = {}  # server.address and .port, by base URL

    async def run(ctx: RequestContext) -> Outcome:
        deployment, chat = ctx.deployment, ctx.chat
        assert deployment is not None
        assert chat is not None
        server = servers.get(deployment.base_url)
        if server is None:
            server = servers[deployment.base_url] = _server(deployment.base_url)
        attributes = _asked(deployment, chat, len(ctx.attempts))
        attributes.update(server)
        span = tracer.start_span(
            f"chat {deployment.upstream_model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        try:
            outcome = await stage(ctx, call_next)
        except BaseException as exc:
            _failed(span, exc, client=True)
            span.end()
            raise
        if isinstance(outcome, EventStream):
            return _watched(outcome, span.end, span, client=True)
        if isinstance(outcome, ChatResponse):
            _answered(span, outcome.finish_reason, outcome.usage)
        span.end()
        return outcome

    return run


def _asked(deployment: Deployment, chat: ChatRequest, attempt: int) -> Attributes:
    attributes: Attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": deployment.provider.value,
        "gen_ai.request.model": deployment.upstream_model,
        "gen_ai.request.stream": chat.stream,
        "llm_gateway.model": deployment.name,
        "llm_gateway.attempt": attempt,
    }
    if deployment.region is not None:
        attributes["llm_gateway.region"] = deployment.region
    if chat.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = chat.max_tokens
    if chat.temperature is not None:
        attributes["gen_ai.request.temperature"] = chat.temperature
    if chat.top_p is not None:
        attributes["gen_ai.request.top_p"] = chat.top_p
    return attributes


def _server(base_url: str) -> Attributes:
    """The host and port of a deployment's URL (never its path or credentials)."""
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return {"server.address": url.hostname or "", "server.port": port}


def _answered(span: Span, finish_reason: str, usage: Usage | None) -> None:
    attributes: Attributes = {"gen_ai.response.finish_reasons": (finish_reason,)}
    if usage is not None and not usage.estimated:
        attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
    span.set_attributes(attributes)


# --- streams and errors ------------------------------------------------------


def _watched(
    stream: EventStream, ended: Callable[[], None], span: Span, client: bool
) -> EventStream:
    """``stream``, calling ``ended`` once when it ends, fails or is closed unread."""
    done = False

    def end() -> None:
        nonlocal done
        if not done:
            done = True
            ended()

    async def events() -> AsyncGenerator[StreamEvent, None]:
        try:
            async for event in stream:
                if client and isinstance(event, StreamEnd):
                    usage = event.usage
                    if usage is not None and not usage.input_tokens and stream.start.input_tokens:
                        usage = Usage(stream.start.input_tokens, usage.output_tokens)
                    _answered(span, event.finish_reason, usage)
                yield event
        except BaseException as exc:
            if not isinstance(exc, _LEFT):
                _failed(span, exc, client)
            raise
        finally:
            await stream.aclose()
            end()

    return EventStream(stream.start, events(), on_close=end)


def _failed(span: Span, exc: BaseException, client: bool) -> None:
    """``error.type`` on ``span``; an error status for what is not the caller's own doing
    (a server's 4xx is the caller's; to a client, every failure is an error)."""
    if isinstance(exc, GatewayError):
        span.set_attribute("error.type", exc.code)
        if client or exc.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return
    if isinstance(exc, asyncio.CancelledError):  # the request's deadline, or a shutdown
        span.set_attribute("error.type", "cancelled")
        if client:
            span.set_status(Status(StatusCode.ERROR))
        return
    kind = type(exc)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    span.set_attribute("error.type", module + kind.__qualname__)
    span.set_status(Status(StatusCode.ERROR))
