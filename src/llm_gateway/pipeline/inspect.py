"""Stages 4 and 7: DLP on the request before it leaves, and on the answer before the caller sees it.

On the way out, every string the request forwards is scanned (system prompt,
messages, tool arguments and results, tool definitions and schemas, stop
sequences...; see :mod:`llm_gateway.dlp.slots`). A BLOCK finding refuses the
request (400 ``dlp_blocked``, naming rules, never text), and so does a REDACT
finding in a name that cannot carry a marker (a tool's name, an image URL);
other REDACT findings are replaced by the configured operator before the
provider sees anything; ALERT findings pass and raise an alert event. The
policy's ``dlp_mode`` obligation replaces the default action for this caller.

On the way back, the answer is scanned the same way: a BLOCK ends it as a
content-filtered answer (``finish_reason: content_filter``), REDACT spans are
replaced; streamed answers are released only once scanned (see
:mod:`llm_gateway.dlp.outbound`). Names and places are looked for in answers
only when the policy's ``ner_answers`` obligation asks (and answers are
scanned at all, ``DLP_SCAN_RESPONSES``): a JSON answer is read by NER with the
rules, before it is returned, its findings acted on as a request's are; a
streamed answer, whose text is released as it is scanned by the rules, is read
by NER once it ends, before its final event: its names are recorded and
alerted (as ``alert`` findings: they have been sent), never redacted. Last,
for a caller whose policy grants ``deanonymize``, reversible tokens are
restored from the conversation's vault, in JSON answers and in streams alike.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import replace

import orjson

from llm_gateway.chat import ChatResponse, EventStream, StreamEnd, StreamEvent
from llm_gateway.dlp.findings import Action, Finding
from llm_gateway.dlp.ner import NerStatus
from llm_gateway.dlp.outbound import HeldText, redact_with_markers
from llm_gateway.dlp.report import DlpReport, blocked_details
from llm_gateway.dlp.restore import StreamRestorer, restore, tokens_in
from llm_gateway.dlp.service import DlpService, require_complete
from llm_gateway.dlp.slots import Slot, request_slots, response_slots, where_text
from llm_gateway.dlp.vault import VaultSession
from llm_gateway.errors import DlpBlocked, DlpUnavailable, RateLimited
from llm_gateway.pipeline.context import Next, Outcome, RequestContext
from llm_gateway.policy.decision import Decision
from llm_gateway.streams import TEXT, filter_stream

alerts = logging.getLogger("llm_gateway.alerts")


class Inspect:
    def __init__(self, dlp: DlpService) -> None:
        self.dlp = dlp

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.chat is not None
        report = ctx.dlp = DlpReport()
        mode = dlp_mode(ctx.decision)
        slots = request_slots(ctx.chat)
        scan = await self.dlp.scan(
            [s.text for s in slots],
            mode=mode,
            ner=ner_wanted(ctx.decision),
            prose=[s.prose for s in slots],
            caller=ner_caller(ctx),
        )
        found = scan.findings
        report.ner_read("request", scan.ner)
        if ner_complete(ctx.decision):
            require_complete(scan.ner)
        fixed = _unredactable(slots, found)
        every = [f for fs in found for f in fs]
        report.add("request", every)
        blocked = [f for f in every if f.action is Action.BLOCK]
        if blocked:
            where = f" (in {', '.join(fixed)}, which cannot be redacted)" if fixed else ""
            raise DlpBlocked(
                "the request carries data that may not leave: "
                + ", ".join(sorted({f.rule for f in blocked}))
                + where,
                details=blocked_details(blocked),
            )
        self._alert(ctx, "request", every)
        deanonymize = bool(ctx.decision and ctx.decision.obligations.deanonymize)
        redacting = any(f.action is Action.REDACT for f in every)
        session = self._session(ctx) if redacting or deanonymize else None
        if redacting:
            redacted = await self.dlp.anonymizer.apply_many(
                [(slot.text, fs) for slot, fs in zip(slots, found, strict=True)], session
            )
            for slot, text in zip(slots, redacted, strict=True):
                if text != slot.text:
                    slot.rewrite(text)

        outcome = await call_next(ctx)
        restoring = session if deanonymize else None
        if not self.dlp.scan_responses and restoring is None:
            return outcome
        if isinstance(outcome, ChatResponse):
            return await self._inspect_answer(ctx, outcome, mode, restoring)
        if not isinstance(outcome, EventStream):  # a challenge: the gateway's own words
            return outcome
        # Tokens in a stream are unknown until they arrive: the whole conversation's map.
        mapping = (await restoring.mapping() or None) if restoring is not None else None
        events = self._inspect_stream(ctx, outcome, mode, mapping)
        return EventStream(outcome.start, events)

    async def _scan_answer(
        self, ctx: RequestContext, slots: list[Slot], mode: Action | None
    ) -> list[list[Finding]]:
        """An answer's findings, slot by slot: the rules', and NER's when the policy asks."""
        if not ner_answers(ctx.decision):
            return [self.dlp.scan_rules(slot.text, mode) for slot in slots]
        scan = await self.dlp.scan(
            [slot.text for slot in slots],
            mode=mode,
            prose=[slot.prose for slot in slots],
            caller=ner_caller(ctx),
        )
        if ctx.dlp is not None:
            ctx.dlp.ner_read("response", scan.ner)
        return scan.findings

    async def _inspect_answer(
        self,
        ctx: RequestContext,
        response: ChatResponse,
        mode: Action | None,
        session: VaultSession | None,
    ) -> ChatResponse:
        if self.dlp.scan_responses:
            scanned = response_slots(response)
            for slot, findings in zip(
                scanned, await self._scan_answer(ctx, scanned, mode), strict=True
            ):
                if not findings:
                    continue
                self._record(ctx, list(findings))
                if any(f.action is Action.BLOCK for f in findings):
                    response.text, response.tool_calls = "", []
                    response.finish_reason = "content_filter"
                    return response
                slot.rewrite(redact_with_markers(slot.text, findings))
        slots = response_slots(response)
        tokens = tokens_in(slot.text for slot in slots) if session is not None else set()
        mapping = await session.values(tokens) if session is not None and tokens else {}
        if mapping:
            ctx.call.response_before_restore = [slot.text for slot in slots]
            for slot in slots:
                slot.rewrite(restore(slot.text, mapping, json_escape=slot.kind == "tool_arguments"))
        return response

    def _inspect_stream(
        self,
        ctx: RequestContext,
        stream: EventStream,
        mode: Action | None,
        mapping: dict[str, str] | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        scanning = self.dlp.scan_responses
        channels: list[_Channel] = []
        if mapping is not None:
            ctx.call.response_before_restore = []
        names_at_end = scanning and ner_answers(ctx.decision)

        def open_channel(index: int) -> _Channel:
            held = (
                HeldText(
                    lambda t: self.dlp.scan_rules(t, mode),
                    self.dlp.stream_holdback,
                    self.dlp.secret_starts,
                )
                if scanning
                else None
            )
            opened = _Channel(
                held,
                mapping,
                json=index != TEXT,
                before_restore=ctx.call.response_before_restore,
                keep=names_at_end,
            )
            channels.append(opened)
            return opened

        def settled() -> None:
            for open_one in channels:
                self._record(ctx, open_one.findings)

        events = filter_stream(stream, open_channel, settled)
        return self._names_at_end(ctx, events, channels, mode) if names_at_end else events

    async def _names_at_end(
        self,
        ctx: RequestContext,
        events: AsyncGenerator[StreamEvent, None],
        channels: list[_Channel],
        mode: Action | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """The stream's events, NER run on its whole text before the final one is sent."""
        try:
            async for event in events:
                if isinstance(event, StreamEnd):
                    await self._stream_names(ctx, channels, mode)
                yield event
        finally:
            await events.aclose()

    async def _stream_names(
        self, ctx: RequestContext, channels: list[_Channel], mode: Action | None
    ) -> None:
        texts = ["".join(channel.kept) for channel in channels]
        try:
            scan = await self.dlp.scan(texts, mode=mode, caller=ner_caller(ctx))
        except (DlpUnavailable, RateLimited) as exc:  # the text is out: nothing to refuse
            status = NerStatus.of(0, sum(map(len, texts)), [_why_not(exc)])
            if ctx.dlp is not None:
                ctx.dlp.ner_read("response", status)
            return
        if ctx.dlp is not None:
            ctx.dlp.ner_read("response", scan.ner)
        # The text has been released: what NER finds now is recorded and alerted, not
        # acted on, and the rules' findings were recorded as the text went.
        names = [
            replace(f, action=Action.ALERT)
            for found in scan.findings
            for f in found
            if f.rule.startswith("ner_")
        ]
        self._record(ctx, names)

    def _record(self, ctx: RequestContext, findings: list[Finding]) -> None:
        if findings and ctx.dlp is not None:
            ctx.dlp.add("response", findings)
            self._alert(ctx, "response", findings)
            findings.clear()  # recorded once, even if the stream goes on

    def _session(self, ctx: RequestContext) -> VaultSession | None:
        """The conversation's vault, namespaced by tenant and user: the only isolation there is."""
        if not self.dlp.anonymizer.uses_vault or ctx.principal is None:
            return None
        p = ctx.principal
        conversation = ctx.conversation_id or ctx.request_id
        # Hashed as a whole, so that no choice of X-Conversation-Id reaches another
        # caller's vault (a plain "tenant:user:id" could be forged with colons).
        key = hashlib.sha256(orjson.dumps([p.tenant, p.user_id, conversation])).hexdigest()
        return self.dlp.vault.session(key)

    def _alert(self, ctx: RequestContext, direction: str, findings: list[Finding]) -> None:
        flagged = sorted({f.rule for f in findings if f.action is Action.ALERT})
        if flagged:
            alerts.warning(
                "DLP alert",
                extra={
                    "request_id": ctx.request_id,
                    "direction": direction,
                    "rules": flagged,
                    "user": ctx.principal.user_id if ctx.principal else None,
                },
            )


def dlp_mode(decision: Decision | None) -> Action | None:
    """The action the policy's ``dlp_mode`` obligation puts in place of every rule's, if any."""
    obligation = decision.obligations.dlp_mode if decision else None
    return Action(obligation) if obligation else None


def ner_wanted(decision: Decision | None) -> bool:
    """False when the policy's ``ner`` obligation leaves NER out for this caller."""
    obligation = decision.obligations.ner if decision else None
    return True if obligation is None else obligation


def ner_complete(decision: Decision | None) -> bool:
    """True when the policy's ``ner_partial: block`` refuses what NER could not read in full."""
    return bool(decision and decision.obligations.ner_partial == "block")


def ner_answers(decision: Decision | None) -> bool:
    """True when the policy's ``ner_answers`` obligation asks for NER on answers too."""
    return bool(decision and decision.allow and decision.obligations.ner_answers)


def _why_not(exc: Exception) -> str:
    return "busy" if isinstance(exc, RateLimited) else "detector error"


def ner_caller(ctx: RequestContext) -> tuple[str, str]:
    """Whose turn it is in NER's fair queue: the tenant, and the user within it."""
    p = ctx.principal
    return ("", "") if p is None else (p.tenant or "", p.user_id)


def _unredactable(slots: list[Slot], found: list[list[Finding]]) -> list[str]:
    """Turn REDACT findings in names (fixed slots) into blocks; return where they were."""
    where: list[str] = []
    for i, (slot, findings) in enumerate(zip(slots, found, strict=True)):
        if slot.fixed and any(f.action is Action.REDACT for f in findings):
            found[i] = [
                replace(f, action=Action.BLOCK) if f.action is Action.REDACT else f
                for f in findings
            ]
            where.append(where_text(slot.where))
    return where


class _Channel:
    """One streamed text channel: scanned and held back, then restored for the authorised."""

    def __init__(
        self,
        held: HeldText | None,
        mapping: dict[str, str] | None,
        *,
        json: bool,
        before_restore: list[str] | None,
        keep: bool = False,
    ) -> None:
        self.held = held
        self.keep = keep
        self.kept: list[str] = []  # the released text, before restoring, for NER at the end
        self.restorer = StreamRestorer(mapping, json_escape=json) if mapping else None
        self.before_restore = before_restore

    @property
    def blocked(self) -> bool:
        return self.held is not None and self.held.blocked

    @property
    def findings(self) -> list[Finding]:
        return self.held.findings if self.held is not None else []

    def feed(self, text: str) -> str:
        released = self.held.feed(text) if self.held is not None else text
        return self._restore(self._kept(released))

    def finish(self) -> str:
        rest = self._restore(self._kept(self.held.finish() if self.held is not None else ""))
        return rest + self.restorer.flush() if self.restorer else rest

    def _kept(self, text: str) -> str:
        if self.keep and text:
            self.kept.append(text)
        return text

    def _restore(self, text: str) -> str:
        if self.restorer is None:
            return text
        if self.before_restore is not None:
            self.before_restore.append(text)
        return self.restorer.feed(text)
