"""Ground: which answers are checked, what each action does, and the retry."""

from __future__ import annotations

import json

import pytest

from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    TextPart,
    ToolCall,
    Usage,
)
from llm_gateway.config.guardrails import Grounding
from llm_gateway.errors import GroundingFailed, UpstreamError
from llm_gateway.grounding import Options
from llm_gateway.pipeline.context import ChatCall, Outcome, RequestContext
from llm_gateway.pipeline.ground import Ground
from llm_gateway.policy.decision import Decision, Obligations
from llm_gateway.streams import as_stream, collect

OUTPUT = json.dumps({"Instances": [{"InstanceId": f"i-{n:08x}", "State": "stopped"}
                                   for n in range(5)]})  # fmt: skip
WRONG = "There are 7 stopped instances."
RIGHT = "There are 5 stopped instances."


def _ctx(*, tools: bool = True, stream: bool = False) -> RequestContext:
    messages = [Message("user", [TextPart("How many stopped instances are there?")])]
    if tools:
        call = ToolCall("call_1", "describe_instances", '{"state": "stopped"}')
        messages += [
            Message("assistant", tool_calls=[call]),
            Message("tool", [TextPart(OUTPUT)], tool_call_id="call_1"),
        ]
    payload = ChatCall(lambda body: ChatRequest(model="m", messages=[]))
    payload.request = ChatRequest(model="m", messages=messages, stream=stream)

    async def no_body() -> bytes:
        return b""

    ctx = RequestContext(
        endpoint="openai", credentials=Credentials(), read_body=no_body, payload=payload
    )
    ctx.principal = Principal(user_id="alice", role="user")
    return ctx


def _ground(action: str = "annotate", retry: int = 0) -> Ground:
    grounding = Grounding.model_validate({"enabled": True, "action": action, "retry": retry})
    return Ground(grounding, Options())


class Model:
    """Answers in turn; remembers what it was asked."""

    def __init__(self, *answers: str, stream: bool = False) -> None:
        self.answers = list(answers)
        self.stream = stream
        self.asked: list[ChatRequest] = []

    async def __call__(self, ctx: RequestContext) -> Outcome:
        assert ctx.chat is not None
        self.asked.append(ctx.chat)
        answer = ChatResponse("m", text=self.answers.pop(0), usage=Usage(10, 5))
        return as_stream(answer) if self.stream else answer


async def test_an_answer_without_tool_results_is_not_checked() -> None:
    ctx = _ctx(tools=False)
    outcome = await _ground()(ctx, Model(WRONG))
    assert isinstance(outcome, ChatResponse)
    assert ctx.call.grounding is None


async def test_annotate_keeps_the_answer_and_puts_the_verdict_on_the_context() -> None:
    ctx = _ctx()
    outcome = await _ground()(ctx, Model(WRONG))
    assert isinstance(outcome, ChatResponse)
    assert outcome.text == WRONG
    assert ctx.call.grounding is not None
    assert not ctx.call.grounding.grounded
    assert "contradiction" in ctx.call.grounding.failed


async def test_block_refuses_an_ungrounded_answer_and_passes_a_grounded_one() -> None:
    with pytest.raises(GroundingFailed) as refused:
        await _ground("block")(_ctx(), Model(WRONG))
    assert "contradiction" in refused.value.details["failed"]
    ctx = _ctx()
    outcome = await _ground("block")(ctx, Model(RIGHT))
    assert isinstance(outcome, ChatResponse)
    assert ctx.call.grounding is not None
    assert ctx.call.grounding.grounded


async def test_the_retry_asks_again_with_the_failure_and_counts_both_answers() -> None:
    ctx = _ctx()
    model = Model(WRONG, RIGHT)
    outcome = await _ground("block", retry=1)(ctx, model)
    assert isinstance(outcome, ChatResponse)
    assert outcome.text == RIGHT
    assert ctx.call.grounding_retried
    second = model.asked[1]
    assert second.messages[-2].text == WRONG  # its own answer, then the correction
    assert "not supported by the tool results" in second.messages[-1].text
    assert outcome.usage == Usage(20, 10)
    assert ctx.chat is not None
    assert len(ctx.chat.messages) == 3  # the caller's request is left as it was


async def test_a_streamed_answer_flows_and_is_judged_at_its_end() -> None:
    ctx = _ctx(stream=True)
    outcome = await _ground()(ctx, Model(WRONG, stream=True))
    assert isinstance(outcome, EventStream)
    assert ctx.call.grounding is None  # not before the end
    answer = await collect(outcome)
    assert answer.text == WRONG
    assert ctx.call.grounding is not None
    assert not ctx.call.grounding.grounded


async def test_block_holds_a_stream_until_it_is_checked() -> None:
    with pytest.raises(GroundingFailed):
        await _ground("block")(_ctx(stream=True), Model(WRONG, stream=True))


async def test_the_policys_obligation_overrides_the_files_action() -> None:
    ctx = _ctx()
    ctx.decision = Decision(True, obligations=Obligations(grounding="block"))
    with pytest.raises(GroundingFailed):
        await _ground("annotate")(ctx, Model(WRONG))
    off = _ctx()
    off.decision = Decision(True, obligations=Obligations(grounding="off"))
    await _ground("block")(off, Model(WRONG))
    assert off.call.grounding is None


async def test_an_answer_of_tool_calls_only_is_not_a_claim() -> None:
    ctx = _ctx()

    async def calls(ctx: RequestContext) -> Outcome:
        return ChatResponse("m", tool_calls=[ToolCall("c2", "stop_instances", "{}")])

    await _ground("block")(ctx, calls)
    assert ctx.call.grounding is None


async def test_a_failed_retry_leaves_the_first_answer_and_its_verdict() -> None:
    ctx = _ctx()
    calls = 0

    async def flaky(ctx: RequestContext) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise UpstreamError("the model is down")
        return ChatResponse("m", text=WRONG)

    outcome = await _ground("annotate", retry=1)(ctx, flaky)
    assert isinstance(outcome, ChatResponse)
    assert outcome.text == WRONG
    assert ctx.call.grounding_retried
    assert ctx.call.grounding is not None
    assert not ctx.call.grounding.grounded
    assert ctx.chat is not None
    assert len(ctx.chat.messages) == 3
