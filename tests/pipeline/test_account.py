"""Account settles once and hands the one record to every recorder, whatever the outcome."""

from __future__ import annotations

import pytest

from llm_gateway.auth import Credentials
from llm_gateway.chat import ChatResponse
from llm_gateway.errors import PolicyDenied
from llm_gateway.pipeline.account import Account
from llm_gateway.pipeline.context import (
    ActionCall,
    ActionResult,
    Attempt,
    Challenge,
    Outcome,
    RequestContext,
)
from tests.pipeline.deployments import deployment
from tests.pipeline.support import Keeper, chat_context, no_body

PROMPT = "my card is 4111 1111 1111 1111"


def _chat() -> RequestContext:
    return chat_context(PROMPT)


async def test_every_recorder_gets_the_same_settled_record_without_text() -> None:
    first, second = Keeper(), Keeper()
    ctx = _chat()

    async def answer(ctx: RequestContext) -> Outcome:
        ctx.attempts.append(Attempt(deployment("m"), status=200))
        return ChatResponse(model="m", text="the answer")

    await Account([first, second])(ctx, answer)
    assert first.records == second.records
    (record,) = first.records
    assert (record.user_id, record.model, record.status) == ("alice", "m", 200)
    assert record.tokens_estimated
    assert record.tokens_in > 0
    assert record.tokens_out > 0
    assert record.prompt is not None
    assert record.response is not None
    assert record.response.chars == len("the answer")
    assert [a.model for a in record.attempts] == ["m"]
    assert PROMPT not in repr(record)
    assert "the answer" not in repr(record)


async def test_a_challenge_is_recorded_as_an_answer() -> None:
    keeper = Keeper()

    async def held(ctx: RequestContext) -> Outcome:
        return Challenge("c-1", "type the phrase", {"id": "c-1"})

    outcome = await Account([keeper])(_chat(), held)
    assert isinstance(outcome, Challenge)
    (record,) = keeper.records
    assert record.status == 200
    assert record.response is not None
    assert record.response.chars == len("type the phrase")


async def test_a_refusal_is_recorded_with_its_code() -> None:
    keeper = Keeper()

    async def refuse(ctx: RequestContext) -> Outcome:
        raise PolicyDenied("no")

    with pytest.raises(PolicyDenied):
        await Account([keeper])(_chat(), refuse)
    (record,) = keeper.records
    assert (record.status, record.error_code) == (403, "policy_denied")


async def test_a_management_action_is_recorded_under_its_name() -> None:
    keeper = Keeper()

    async def handler(ctx: RequestContext) -> object:
        return {"ok": True}

    ctx = RequestContext(
        endpoint="models.list",
        credentials=Credentials(),
        read_body=no_body,
        payload=ActionCall("models.list", handler),
    )

    async def run(ctx: RequestContext) -> Outcome:
        return ActionResult({"ok": True})

    outcome = await Account([keeper])(ctx, run)
    assert isinstance(outcome, ActionResult)
    (record,) = keeper.records
    assert (record.endpoint, record.status, record.prompt, record.model_requested) == (
        "models.list", 200, None, None,
    )  # fmt: skip
