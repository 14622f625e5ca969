"""Stage 4c: an agent's answer checked against its own tool results.

When the conversation holds tool results (:func:`~llm_gateway.grounding.
from_chat.conversation_of`), the model's text answer is checked by
:func:`llm_gateway.grounding.check` and the verdict goes on the context
(``ctx.call.grounding``): the doors add it to the answer and the audit row
keeps its summary (counts and failed checks, never a value of the tool
output). An answer that is only tool calls is not a claim about results, and
is not checked.

What an ungrounded answer gets is ``grounding.action`` in
``config/guardrails.yaml``, unless the policy's ``grounding`` obligation
says otherwise for this caller or model (``off``, ``annotate``, ``block``):

- ``annotate``: the answer goes out with its verdict;
- ``block``: the caller gets ``grounding_failed``, naming the failed checks;
  a streamed answer is then held whole until it is checked.

With ``grounding.retry: 1`` an ungrounded JSON answer is asked for once more,
with a corrective instruction naming what failed, and the second answer is
checked and acted on. A streamed answer under ``annotate`` flows as it comes
and its verdict is the final event's (see the doors); it is not retried,
since the caller already has it.

The stage sits inside ``Inspect``: it checks the answer as the model wrote it
against the conversation as the model saw it (both with DLP's tokens, so
they agree), and the answer it lets through still passes outbound DLP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator, Sequence

from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)
from llm_gateway.config.guardrails import Grounding
from llm_gateway.errors import GatewayError, GroundingFailed
from llm_gateway.grounding import Conversation, Options, Verdict, check
from llm_gateway.grounding.from_chat import conversation_of
from llm_gateway.pipeline.context import Next, Outcome, RequestContext
from llm_gateway.streams import as_stream, collect

log = logging.getLogger(__name__)

#: Tool output beyond this many characters is checked off the event loop.
OFF_LOOP_CHARS = 64 * 1024


class Ground:
    def __init__(self, grounding: Grounding, options: Options) -> None:
        self.action = grounding.action
        self.retry = grounding.retry
        self.options = options

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        chat = ctx.chat
        assert chat is not None
        conversation = conversation_of(chat)
        action = self._action(ctx)
        if conversation is None or action == "off":
            return await call_next(ctx)
        outcome = await call_next(ctx)
        if isinstance(outcome, EventStream):
            if action == "annotate":
                return EventStream(outcome.start, self._annotated(ctx, conversation, outcome))
            outcome = await collect(outcome)
        if not isinstance(outcome, ChatResponse):
            return outcome
        answer = outcome
        verdict = await self._check(ctx, conversation, answer)
        if verdict is not None and not verdict.grounded and self.retry:
            again = await self._again(ctx, chat, answer, verdict, call_next)
            if again is not None:
                answer = again
                verdict = await self._check(ctx, conversation, answer)
        if verdict is not None and not verdict.grounded and action == "block":
            raise GroundingFailed(
                "the answer is not grounded in its tool results: " + ", ".join(verdict.failed),
                details={"failed": list(verdict.failed)},
            )
        return as_stream(answer) if chat.stream else answer

    async def _again(
        self,
        ctx: RequestContext,
        chat: ChatRequest,
        answer: ChatResponse,
        verdict: Verdict,
        call_next: Next,
    ) -> ChatResponse | None:
        """The model's second answer, told what was wrong with its first; None when the
        second call fails (the first answer and its verdict then stand)."""
        ctx.call.grounding_retried = True
        ctx.chat = corrective(chat, answer, verdict)
        try:
            again = await call_next(ctx)
            if isinstance(again, EventStream):
                again = await collect(again)
        except GatewayError as error:
            log.warning("grounding: the corrective retry failed (%s); the first answer stands",
                        error.code)  # fmt: skip
            return None
        finally:
            ctx.chat = chat
        if not isinstance(again, ChatResponse):
            return None
        again.usage = _sum(answer.usage, again.usage)  # both answers were paid for
        return again

    def _action(self, ctx: RequestContext) -> str:
        obliged = ctx.decision.obligations.grounding if ctx.decision is not None else None
        return obliged or self.action

    async def _check(
        self, ctx: RequestContext, conversation: Conversation, answer: ChatResponse
    ) -> Verdict | None:
        if not answer.text and answer.tool_calls:
            return None  # tool calls only: the agent is still asking, not reporting
        verdict = await checked(conversation, answer.text, self.options)
        ctx.call.grounding = verdict
        return verdict

    async def _annotated(
        self, ctx: RequestContext, conversation: Conversation, stream: EventStream
    ) -> AsyncGenerator[StreamEvent, None]:
        """The stream as it comes; at its end, the verdict on its whole text."""
        text: list[str] = []
        calls = False
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, StreamEnd):
                    if text or not calls:
                        answer = "".join(text)
                        ctx.call.grounding = await checked(conversation, answer, self.options)
                else:
                    calls = True
                yield event
        finally:
            await stream.aclose()


async def checked(
    conversation: Conversation,
    answer: str,
    options: Options,
    logprobs: Sequence[float] | None = None,
) -> Verdict:
    """The verdict; a large conversation is checked on a thread, off the event loop."""
    size = sum(len(t.output) for t in conversation.tools) + len(answer)
    if size > OFF_LOOP_CHARS:
        return await asyncio.to_thread(check, conversation, answer, options, logprobs)
    return check(conversation, answer, options, logprobs)


def corrective(chat: ChatRequest, answer: ChatResponse, verdict: Verdict) -> ChatRequest:
    """The request again, with the ungrounded answer and an instruction to correct it."""
    said = "; ".join(_explained(verdict)) or ", ".join(verdict.failed)
    instruction = (
        "Your previous answer was not supported by the tool results above: "
        f"{said}. Answer again using only what the tool results say, state values exactly "
        "as they appear there, and do not guess."
    )
    messages = [
        *chat.messages,
        Message("assistant", [TextPart(answer.text)]),
        Message("user", [TextPart(instruction)]),
    ]
    return dataclasses.replace(chat, messages=messages)


def _sum(first: Usage | None, second: Usage | None) -> Usage | None:
    if first is None or second is None:
        return second or first
    return Usage(
        first.input_tokens + second.input_tokens,
        first.output_tokens + second.output_tokens,
        first.estimated or second.estimated,
    )


def _explained(verdict: Verdict) -> list[str]:
    wrong = [c for c in verdict.claims if c.status in ("unsupported", "contradicted")]
    return [f"{c.text!r} is {c.status}" for c in wrong[:5]]
