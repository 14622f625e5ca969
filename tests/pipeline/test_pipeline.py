"""The pipeline marks each stage's start, so the record says what each stage took."""

from __future__ import annotations

import asyncio

import pytest

from llm_gateway.chat import ChatResponse
from llm_gateway.errors import PolicyDenied
from llm_gateway.pipeline import Pipeline, stage_name
from llm_gateway.pipeline.account import Account
from llm_gateway.pipeline.context import Next, Outcome, RequestContext
from llm_gateway.pipeline.record import request_record
from tests.pipeline.support import Keeper, chat_context


class Sleepy:
    """Takes ``seconds`` on the way in, then passes the request on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        await asyncio.sleep(self.seconds)
        return await call_next(ctx)


class Twice:
    """Calls the rest twice, as a failover calls the provider again."""

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        await call_next(ctx)
        return await call_next(ctx)


class Answer:
    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        return ChatResponse(model="m", text="ok")


class Refuse:
    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        raise PolicyDenied("no")


async def test_each_stage_that_passes_the_request_on_is_timed_once() -> None:
    keeper = Keeper()
    pipeline = Pipeline([Account([keeper]), Sleepy(0.02), Twice(), Answer()])
    await pipeline(chat_context())
    (record,) = keeper.records
    names = [name for name, _ in record.stages]
    assert names == ["account", "sleepy", "twice"]  # the last one answers: not timed
    seconds = dict(record.stages)
    assert seconds["sleepy"] >= 0.02
    assert seconds["account"] < seconds["sleepy"]


async def test_a_stage_that_refuses_is_not_timed_the_ones_before_it_are() -> None:
    keeper = Keeper()
    pipeline = Pipeline([Account([keeper]), Sleepy(0), Refuse(), Answer()])
    ctx = chat_context()
    with pytest.raises(PolicyDenied):
        await pipeline(ctx)
    assert [name for name, _ in request_record(ctx).stages] == ["account", "sleepy"]


def test_stage_names_are_their_classes_in_snake_case() -> None:
    assert stage_name(Sleepy(0)) == "sleepy"
    assert stage_name(Account([])) == "account"

    class ParseRequest(Answer):
        pass

    assert stage_name(ParseRequest()) == "parse_request"
