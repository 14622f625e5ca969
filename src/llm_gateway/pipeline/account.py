"""Stage 8, the outermost: settle tokens and cost once, and hand one record to every recorder.

It wraps every other stage, so it sees every outcome: an answer, a stream, a
challenge, a management action's result, a refusal or a failure. The record
(:class:`~llm_gateway.records.RequestRecord`) goes to the recorders in order
(the access log, the metrics, the audit trail, the budgets), and is
recorded before the answer completes: for a JSON answer before it is
returned, for a stream before its final event is passed on. A stream the
client abandons is still recorded (status 499). The journals among the
recorders (the audit trail) may refuse a request before anything else runs,
and hear of a stream before its first byte.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from llm_gateway.chat import (
    ChatResponse,
    EventStream,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_gateway.errors import GatewayError, InternalError
from llm_gateway.pipeline.context import (
    ActionResult,
    Challenge,
    ChatCall,
    Next,
    Outcome,
    RequestContext,
)
from llm_gateway.pipeline.record import request_record
from llm_gateway.records import Journal, Recorder
from llm_gateway.tokens import estimate_prompt, estimate_text

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # nginx's convention for "the client went away"


class Account:
    def __init__(self, recorders: Sequence[Recorder]) -> None:
        self.recorders = tuple(recorders)
        self.journals = tuple(r for r in recorders if isinstance(r, Journal))
        self._late: set[asyncio.Task[None]] = set()  # records of abandoned streams, in flight

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        try:
            for journal in self.journals:
                journal.admit()
            outcome = await call_next(ctx)
            if isinstance(outcome, EventStream):
                await self._opened(ctx, outcome)
        except GatewayError as exc:
            await self._failed(ctx, exc)
            raise
        except Exception as exc:
            log.exception("unexpected error", extra={"request_id": ctx.request_id})
            error = InternalError("the gateway failed to handle the request")
            await self._failed(ctx, error)
            raise error from exc
        if isinstance(outcome, ChatResponse):
            text = outcome.text + outcome.tool_calls_text()
            if isinstance(ctx.payload, ChatCall) and ctx.payload.released:
                _unbilled(ctx, text)  # accounted when it was withheld
            else:
                self._settle(ctx, text, outcome.usage)
            outcome.usage = ctx.usage  # the front door reports what was accounted
            await self._record(ctx)
            return outcome
        if isinstance(outcome, Challenge):
            if outcome.usage is not None:  # a model answered: what it used is billed now
                self._settle(ctx, outcome.text, outcome.usage)
            else:
                _unbilled(ctx, outcome.text)  # the gateway's own words: no model was called
            await self._record(ctx)
            return outcome
        if isinstance(outcome, ActionResult):
            await self._record(ctx)
            return outcome
        tally = _Tally()
        return EventStream(
            outcome.start,
            self._watch(ctx, outcome, tally),
            on_close=lambda: self._closed(ctx, tally),
        )

    async def _watch(
        self, ctx: RequestContext, stream: EventStream, tally: _Tally
    ) -> AsyncGenerator[StreamEvent, None]:
        try:
            async for event in stream:
                if isinstance(event, StreamEnd):
                    usage = event.usage
                    if usage is not None and not usage.input_tokens and stream.start.input_tokens:
                        usage.input_tokens = stream.start.input_tokens
                    tally.recorded = True
                    if isinstance(ctx.payload, ChatCall) and ctx.payload.released:
                        _unbilled(ctx, tally.joined())  # accounted when it was withheld
                    else:
                        self._settle(ctx, tally.joined(), usage)
                    event.usage = ctx.usage
                    await self._record(ctx)
                else:
                    tally.add(ctx, event)
                yield event
        except GatewayError as exc:
            if not tally.recorded:
                tally.recorded = True
                self._settle(ctx, tally.joined(), None)
                await self._failed(ctx, exc)
            raise
        except Exception as exc:
            log.exception("unexpected error mid-stream", extra={"request_id": ctx.request_id})
            error = InternalError("the gateway failed while streaming the answer")
            if not tally.recorded:
                tally.recorded = True
                await self._failed(ctx, error)
            raise error from exc
        finally:
            await stream.aclose()

    async def _opened(self, ctx: RequestContext, stream: EventStream) -> None:
        """Before the stream's first byte: the journals' opening record, or no stream."""
        if not self.journals:
            return
        record = request_record(ctx)
        try:
            for journal in self.journals:
                await journal.opened(record)
        except BaseException:
            await stream.aclose()
            raise

    def _closed(self, ctx: RequestContext, tally: _Tally) -> None:
        """The consumer is done with the stream; record it if it ended some other way."""
        if tally.recorded:
            return
        tally.recorded = True
        # The caller went away, or the gateway ended the stream (its shutdown: ctx.error).
        ctx.status = ctx.error.status if ctx.error is not None else CLIENT_CLOSED
        self._settle(ctx, tally.joined(), None)
        task = asyncio.get_running_loop().create_task(self._record_quietly(ctx))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    def _settle(self, ctx: RequestContext, response_text: str, usage: Usage | None) -> None:
        """Fix the answer's text and usage, estimating tokens the provider did not report."""
        ctx.response_text = response_text
        if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
            prompt = ctx.chat.texts() if ctx.chat is not None else []
            usage = Usage(estimate_prompt(prompt), estimate_text(ctx.response_text), estimated=True)
        ctx.usage = usage
        price = ctx.deployment.price if ctx.deployment else None
        if isinstance(ctx.payload, ChatCall) and ctx.payload.stale:
            price = None  # a cached answer costs no provider anything
        if price is not None:
            ctx.cost_usd = price.cost(usage.input_tokens, usage.output_tokens)

    async def _failed(self, ctx: RequestContext, error: GatewayError) -> None:
        ctx.status = error.status
        ctx.error = error
        await self._record(ctx)

    async def _record(self, ctx: RequestContext) -> None:
        record = request_record(ctx)
        for recorder in self.recorders:
            await recorder.record(record)

    async def _record_quietly(self, ctx: RequestContext) -> None:
        """For a stream nobody waits on any more: a failure is logged, not raised."""
        try:
            await self._record(ctx)
        except Exception:
            log.exception(
                "recording an abandoned stream failed", extra={"request_id": ctx.request_id}
            )


@dataclass(slots=True)
class _Tally:
    """What a stream has carried so far, and whether its row is written."""

    text: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    recorded: bool = False

    def add(self, ctx: RequestContext, event: StreamEvent) -> None:
        """Note a delta's text, and when the first one came."""
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self.arguments.append(event.arguments)
        else:
            return
        if ctx.first_token_ms is None:
            ctx.first_token_ms = ctx.elapsed_ms

    def joined(self) -> str:
        return "".join(self.text) + "".join(self.arguments)


def _unbilled(ctx: RequestContext, response_text: str) -> None:
    """An answer no model was asked for now: no tokens, no cost."""
    ctx.response_text = response_text
    ctx.usage = Usage(0, 0)
    ctx.cost_usd = 0.0
