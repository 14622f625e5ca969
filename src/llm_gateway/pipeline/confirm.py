"""Stage 4b: risky prompts and tool calls wait for a person's confirmation.

Two checkpoints, on the rules of ``config/guardrails.yaml``'s ``hitl``
section (:mod:`llm_gateway.hitl`):

- **the prompt**: the caller's last user message matches a rule, and the
  request offers the model no tools: the request is not forwarded; it is
  held, and the answer is a challenge;
- **the answer**: the model's answer carries a tool call that matches: the
  answer is withheld, held, and the answer is a challenge. A streamed answer
  to a request that offers tools is read whole before it is decided (and
  passed on as a stream when nothing matched), so that no tool call can
  reach the caller undecided.

A request that offers tools goes to the model even when its prompt matches: a
model only proposes, and its tool call says what would be done to what (the
7 instance ids), which is what the person confirming needs to see. When the
prompt and the tool call match the same rule, the challenge speaks the
prompt's word: "Delete all stopped EC2 instances" answered with a
``terminate_instances`` call for 7 ids is confirmed by ``confirm delete 7
instances``.

The caller's next message in the conversation answers a pending
confirmation, and never reaches the model: the exact phrase releases what
was held (the request goes to the model then; a withheld answer is returned
unchanged), ``cancel`` discards it, ``show details`` lists its whole scope,
anything else leaves it pending; once approved through the confirmations API,
the requester's next message (whatever it says) gets what was held. The
conversation is ``X-Conversation-Id``,
or, without it, the one whose history holds the challenge (its text names
the confirmation's id). A rule's ``require_mfa`` wants the confirming
person's TOTP code after the phrase (``confirm delete 7 instances 123456``)
or in ``x-gateway-mfa``; a rule's ``approvers`` are asked through the
confirmations API, never in the requester's conversation.

The stage sits inside ``Inspect``: a held request was already scanned, and a
released answer passes outbound DLP and accounting like any other.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from llm_gateway.chat import ChatResponse, EventStream, Usage
from llm_gateway.hitl import (
    Checkpoints,
    Scope,
    Trigger,
    confirmation_phrase,
    normalised,
    scope_of,
)
from llm_gateway.hitl.challenge import (
    CANCEL,
    ID_IN_TEXT,
    SHOW_DETAILS,
    challenge_text,
    confirmation_object,
    details_text,
    reply_text,
)
from llm_gateway.hitl.confirmations import (
    OPEN,
    Confirmation,
    Confirmations,
    new_confirmation_id,
)
from llm_gateway.hitl.held import answer_of, dump, request_of
from llm_gateway.hitl.mfa import MfaCodes
from llm_gateway.pipeline.context import Challenge, Next, Outcome, RequestContext
from llm_gateway.streams import as_stream, collect


class Confirm:
    def __init__(
        self,
        checkpoints: Checkpoints,
        confirmations: Confirmations,
        environment: str,
        mfa: MfaCodes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.checkpoints = checkpoints
        self.confirmations = confirmations
        self.environment = environment
        self.mfa = mfa
        self.clock = clock

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        chat = ctx.chat
        assert chat is not None
        pending = await self._pending(ctx)
        if pending is not None:
            return await self._answer(ctx, pending, call_next)
        assert ctx.principal is not None
        known = (ctx.environment, ctx.principal.environment, self.environment)
        environments = [e for e in known if e]
        last = next((m.text for m in reversed(chat.messages) if m.role == "user"), "")
        asked = self.checkpoints.prompt(last, environments=environments)
        if asked is not None and not chat.tools:
            return await self._hold(ctx, asked, held={"request": dump(chat)})
        outcome = await call_next(ctx)
        stream = isinstance(outcome, EventStream)
        if stream and not chat.tools:
            return outcome  # no tool was offered: no tool call can come back
        if not isinstance(outcome, ChatResponse | EventStream):
            return outcome
        answer = await collect(outcome) if isinstance(outcome, EventStream) else outcome
        for call in answer.tool_calls:
            trigger = self.checkpoints.tool_call(call, environments=environments)
            if trigger is not None:
                if asked is not None and asked.index == trigger.index:
                    trigger = dataclasses.replace(trigger, verb=asked.verb)
                held = {"answer": dump(answer), "stream": stream}
                return await self._hold(ctx, trigger, held=held, usage=answer.usage)
        return as_stream(answer) if stream else answer

    async def _pending(self, ctx: RequestContext) -> Confirmation | None:
        """The pending confirmation this message may answer, if any."""
        assert ctx.principal is not None
        assert ctx.chat is not None
        tenant, user = ctx.principal.tenant, ctx.principal.user_id
        if ctx.conversation_id is not None:
            return await self.confirmations.for_conversation(tenant, user, ctx.conversation_id)
        for message in reversed(ctx.chat.messages):
            found = ID_IN_TEXT.search(message.text) if message.role == "assistant" else None
            if found is not None:
                confirmation = await self.confirmations.get(found.group(1), tenant=tenant)
                if confirmation is None or confirmation.user_id != user:
                    return None
                return confirmation if confirmation.status in OPEN else None
        return None

    async def _hold(
        self,
        ctx: RequestContext,
        trigger: Trigger,
        *,
        held: dict[str, object],
        usage: Usage | None = None,
    ) -> Challenge:
        assert ctx.principal is not None
        call = trigger.tool_call
        scope = scope_of(call.arguments) if call is not None else Scope((), None)
        now = self.clock()
        rule = trigger.rule
        confirmation = Confirmation(
            id=new_confirmation_id(),
            tenant=ctx.principal.tenant,
            user_id=ctx.principal.user_id,
            conversation=ctx.conversation_id,
            rule=trigger.index,
            verb=trigger.verb,
            phrase=confirmation_phrase(trigger.verb, scope, call.name if call else None),
            scope=scope.items,
            environment=trigger.environment,
            requires_mfa=rule.require_mfa,
            approvers=tuple(rule.approvers),
            created_at=now,
            expires_at=now + rule.expires_seconds,
            cooldown_until=now + rule.cooldown_seconds,
            held=dict(held),
            cost_impact_usd=trigger.cost_usd,
        )
        await self.confirmations.open(confirmation)
        ctx.call.confirmation = f"{confirmation.id}:challenged"
        text = challenge_text(
            confirmation, tool_name=call.name if call else None, shown=scope.shown()
        )
        return Challenge(confirmation.id, text, confirmation_object(confirmation), usage=usage)

    async def _answer(self, ctx: RequestContext, pending: Confirmation, call_next: Next) -> Outcome:
        assert ctx.chat is not None
        last = next((m.text for m in reversed(ctx.chat.messages) if m.role == "user"), "")
        reply, code = _with_code(normalised(last), ctx.mfa_code)
        if pending.status == "approved":  # approved through the API: any message releases it
            return await self._release(ctx, pending, call_next)
        if reply == CANCEL:
            decided = await self.confirmations.decide(pending, "cancelled")
            return self._said(ctx, decided or pending, "cancelled", "Cancelled: nothing was done.")
        if reply == SHOW_DETAILS:
            return self._said(ctx, pending, "details", details_text(pending))
        if reply != normalised(pending.phrase):
            said = f"Still waiting for confirmation: type '{pending.phrase}', or '{CANCEL}'."
            return self._said(ctx, pending, "pending", said)
        if pending.approvers:
            said = (
                f"This confirmation needs the approval of {' or '.join(pending.approvers)} "
                "(through the confirmations API): nothing was done."
            )
            return self._said(ctx, pending, "refused", said)
        if pending.requires_mfa and not await self._valid_code(ctx, code):
            said = (
                "This confirmation needs your MFA code: type the phrase and then the code, "
                "or send it in x-gateway-mfa. Nothing was done."
            )
            return self._said(ctx, pending, "refused", said)
        if self.clock() < pending.cooldown_until:
            wait = pending.cooldown_until - self.clock()
            said = f"Too soon to confirm: read the challenge again and confirm in {wait:.0f} s."
            return self._said(ctx, pending, "refused", said)
        return await self._release(ctx, pending, call_next, mfa=pending.requires_mfa)

    async def _release(
        self, ctx: RequestContext, pending: Confirmation, call_next: Next, *, mfa: bool = False
    ) -> Outcome:
        assert ctx.chat is not None
        decided = await self.confirmations.decide(pending, "confirmed")
        if decided is None:
            return self._said(ctx, pending, "refused", "This confirmation was already decided.")
        ctx.call.confirmation = f"{pending.id}:confirmed{'+mfa' if mfa else ''}"
        if "request" in pending.held:  # a held prompt: it goes to the model now
            ctx.chat = request_of(pending.held["request"])
            return await call_next(ctx)
        ctx.call.released = True  # the model's answer was accounted when it was withheld
        answer = answer_of(pending.held["answer"])
        return as_stream(answer) if ctx.chat.stream else answer

    async def _valid_code(self, ctx: RequestContext, code: str | None) -> bool:
        assert ctx.principal is not None
        if code is None or self.mfa is None:
            return False
        return await self.mfa.verify(ctx.principal.user_id, ctx.principal.tenant, code)

    def _said(self, ctx: RequestContext, c: Confirmation, event: str, said: str) -> Challenge:
        ctx.call.confirmation = f"{c.id}:{event}"
        return Challenge(c.id, reply_text(c, said), {**confirmation_object(c), "event": event})


def _with_code(reply: str, header: str | None) -> tuple[str, str | None]:
    """The reply without a trailing six-digit MFA code, and the code (or the header's)."""
    words = reply.rsplit(" ", 1)
    if len(words) == 2 and len(words[1]) == 6 and words[1].isdigit():
        return words[0], words[1]
    return reply, header
