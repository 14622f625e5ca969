"""The Inspect stage on its own: what it sends on, and what the audit row digests."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from llm_gateway.audit.records import audit_row, digest
from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
)
from llm_gateway.dlp.findings import Action
from llm_gateway.dlp.service import DlpService
from llm_gateway.errors import DlpBlocked, DlpUnavailable
from llm_gateway.pipeline.context import ChatCall, Outcome, RequestContext
from llm_gateway.pipeline.inspect import Inspect
from llm_gateway.pipeline.record import request_record
from llm_gateway.policy.decision import Decision, Obligations
from llm_gateway.settings import load_settings
from tests.dlp.test_ner import require_ner_extra


async def _body() -> bytes:
    return b""


def _context(prompt: str) -> RequestContext:
    ctx = RequestContext(
        endpoint="native",
        credentials=Credentials(),
        read_body=_body,
        payload=ChatCall(lambda body: ChatRequest(model="m", messages=[])),
        principal=Principal(user_id="alice", role="admin"),
    )
    ctx.chat = ChatRequest(
        model="m", messages=[Message(role="user", content=[TextPart(prompt)])], stream=True
    )
    ctx.decision = Decision(True, obligations=Obligations(deanonymize=True))
    return ctx


def _answer(*chunks: str) -> EventStream:
    async def events() -> AsyncGenerator[StreamEvent, None]:
        for chunk in chunks:
            yield TextDelta(chunk)
        yield StreamEnd("stop")

    return EventStream(StreamStart("m"), events())


async def _streamed(stage: Inspect, ctx: RequestContext, *chunks: str) -> str:
    async def provider(_ctx: RequestContext) -> Outcome:
        return _answer(*chunks)

    outcome = await stage(ctx, provider)
    assert isinstance(outcome, EventStream)
    return "".join([e.text async for e in outcome if isinstance(e, TextDelta)])


async def test_a_streamed_answer_with_nothing_to_restore_is_digested_as_sent(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {"DLP_NER": "off", "DATA_DIR": str(tmp_path), "DLP_OPERATOR": "token"}, env_file=None
    )
    dlp = await DlpService.start(settings.dlp, settings.state)
    try:
        ctx = _context("Hello, nothing sensitive here.")
        text = await _streamed(Inspect(dlp), ctx, "Hello ", "there")
    finally:
        await dlp.aclose()
    assert text == "Hello there"
    ctx.response_text = text  # as the accounting stage records it
    row = audit_row(request_record(ctx))
    assert (row["response_sha256"], row["response_chars"]) == digest(["Hello there"])


async def test_a_restored_stream_is_digested_before_restoring(tmp_path: Path) -> None:
    settings = load_settings(
        {"DLP_NER": "off", "DATA_DIR": str(tmp_path), "DLP_OPERATOR": "token"}, env_file=None
    )
    dlp = await DlpService.start(settings.dlp, settings.state)
    try:
        ctx = _context("Mail bob.smith@example.com please")
        seen: list[str] = []

        async def provider(_ctx: RequestContext) -> Outcome:
            assert _ctx.chat is not None
            seen.append(_ctx.chat.messages[0].text)
            token = seen[0].split()[1]  # "Mail <EMAIL_1> please"
            return _answer("Sent to ", token[:3], token[3:], ".")

        outcome = await Inspect(dlp)(ctx, provider)
        assert isinstance(outcome, EventStream)
        text = "".join([e.text async for e in outcome if isinstance(e, TextDelta)])
    finally:
        await dlp.aclose()
    assert "bob.smith@example.com" not in seen[0]
    assert text == "Sent to bob.smith@example.com."
    ctx.response_text = text
    row = audit_row(request_record(ctx))
    assert row["response_sha256"] != digest([text])[0]  # never a digest of restored values


async def test_the_policy_dlp_mode_is_obeyed(tmp_path: Path) -> None:
    """An SSN the deployment would redact is blocked for a caller whose policy says block."""
    settings = load_settings({"DLP_NER": "off", "DATA_DIR": str(tmp_path)}, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    try:
        ctx = _context("my SSN is 536-22-8726")
        ctx.decision = Decision(True, obligations=Obligations(dlp_mode="block"))
        with pytest.raises(DlpBlocked):
            await _streamed(Inspect(dlp), ctx, "never sent")
    finally:
        await dlp.aclose()
    assert ctx.dlp is not None
    assert [f.entity for _, f in ctx.dlp.findings] == ["US_SSN"]


class _UnreadNer:
    """A detector NER cannot run with: what a gateway without the ner extra has."""

    available = False
    reason = "presidio-analyzer is not installed (install the ner extra)"

    async def aclose(self) -> None:
        return None


async def _answered(stage: Inspect, ctx: RequestContext) -> None:
    async def provider(_ctx: RequestContext) -> Outcome:
        return _answer("fine")

    await _streamed_outcome(stage, ctx, provider)


async def _streamed_outcome(
    stage: Inspect, ctx: RequestContext, provider: Callable[[RequestContext], Awaitable[Outcome]]
) -> None:
    outcome = await stage(ctx, provider)
    assert isinstance(outcome, EventStream)
    [e async for e in outcome]


async def test_the_audit_row_says_how_much_ner_read(tmp_path: Path) -> None:
    settings = load_settings({"DLP_NER": "off", "DATA_DIR": str(tmp_path)}, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    try:
        off = _context("Hello, Maria Garcia.")
        await _answered(Inspect(dlp), off)
        dlp.ner = _UnreadNer()  # type: ignore[assignment]
        skipped = _context("Hello, Maria Garcia.")
        await _answered(Inspect(dlp), skipped)
    finally:
        await dlp.aclose()
    assert audit_row(request_record(off))["dlp_ner"] == "off"
    assert audit_row(request_record(skipped))["dlp_ner"] == "skipped (extra not installed)"


async def test_the_policy_may_refuse_what_ner_could_not_read(tmp_path: Path) -> None:
    """``ner_partial: block``: 503 dlp_unavailable, the audit row saying why; else it passes."""
    settings = load_settings({"DLP_NER": "off", "DATA_DIR": str(tmp_path)}, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    dlp.ner = _UnreadNer()  # type: ignore[assignment]
    sent: list[str] = []

    async def provider(_ctx: RequestContext) -> Outcome:
        sent.append("sent")
        return _answer("fine")

    try:
        strict = _context("Hello, Maria Garcia.")
        strict.decision = Decision(True, obligations=Obligations(ner_partial="block"))
        with pytest.raises(DlpUnavailable, match="skipped"):
            await Inspect(dlp)(strict, provider)
        lenient = _context("Hello, Maria Garcia.")
        lenient.decision = Decision(True, obligations=Obligations(ner_partial="pass"))
        await _streamed_outcome(Inspect(dlp), lenient, provider)
    finally:
        await dlp.aclose()
    assert sent == ["sent"]  # only the lenient caller's request went on
    assert audit_row(request_record(strict))["dlp_ner"] == "skipped (extra not installed)"


ANSWER = "I forwarded it to Maria Garcia in Lisbon."


@pytest.fixture(scope="module")
async def named_dlp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DlpService]:
    require_ner_extra()
    env = {"DLP_NER": "on", "DATA_DIR": str(tmp_path_factory.mktemp("ner-answers"))}
    settings = load_settings({**env, "DLP_NER_TIMEOUT_MS": "60000"}, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    yield dlp
    await dlp.aclose()


def _asking(ner_answers: bool) -> RequestContext:
    ctx = _context("Please forward the report.")
    ctx.decision = Decision(True, obligations=Obligations(ner_answers=ner_answers))
    return ctx


async def _json_answer(stage: Inspect, ctx: RequestContext, text: str) -> ChatResponse:
    async def provider(_ctx: RequestContext) -> Outcome:
        return ChatResponse(model="m", text=text)

    outcome = await stage(ctx, provider)
    assert isinstance(outcome, ChatResponse)
    return outcome


async def test_a_json_answer_gets_ner_when_the_policy_asks(named_dlp: DlpService) -> None:
    asked, plain = _asking(True), _asking(False)

    redacted = await _json_answer(Inspect(named_dlp), asked, ANSWER)
    untouched = await _json_answer(Inspect(named_dlp), plain, ANSWER)

    assert "Maria Garcia" not in redacted.text
    assert "<PERSON_REDACTED>" in redacted.text
    assert asked.dlp is not None
    assert ("response", "PERSON") in {(d, f.entity) for d, f in asked.dlp.findings}
    assert audit_row(request_record(asked))["dlp_ner"] == "full; answer: full"
    assert untouched.text == ANSWER  # no obligation: the answer's NER stays off
    assert audit_row(request_record(plain))["dlp_ner"] == "full"


async def test_a_streamed_answer_gets_ner_at_its_end(named_dlp: DlpService) -> None:
    """Released as scanned by the rules, the names in it are found at the end: recorded
    and alerted (they have been sent), the audit row saying NER read the answer."""
    asked = _asking(True)

    text = await _streamed(Inspect(named_dlp), asked, "I forwarded it ", "to Maria ", "Garcia.")

    assert text == "I forwarded it to Maria Garcia."
    assert asked.dlp is not None
    names = [f for d, f in asked.dlp.findings if d == "response" and f.entity == "PERSON"]
    assert names
    assert {f.action for f in names} == {Action.ALERT}
    assert audit_row(request_record(asked))["dlp_ner"] == "full; answer: full"
    assert any(
        s["entity"] == "PERSON" and s["direction"] == "response"
        for s in request_record(asked).dlp_findings
    )


async def test_a_streamed_answer_without_the_obligation_gets_no_ner(
    named_dlp: DlpService,
) -> None:
    plain = _asking(False)
    await _streamed(Inspect(named_dlp), plain, "I forwarded it ", "to Maria ", "Garcia.")
    assert plain.dlp is not None
    assert [f for d, f in plain.dlp.findings if d == "response"] == []
    assert audit_row(request_record(plain))["dlp_ner"] == "full"
