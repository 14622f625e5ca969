"""OpenAI's tables and encoders, which the front door and the adapter share."""

from __future__ import annotations

from typing import get_args

from llm_gateway.chat import FinishReason, ToolCall
from llm_gateway.wire.openai import FINISH_FROM_OPENAI, FINISH_TO_OPENAI, tool_calls_to_openai


def test_every_finish_reason_has_an_openai_name() -> None:
    assert set(FINISH_TO_OPENAI) == set(get_args(FinishReason))


def test_what_the_gateway_writes_it_reads_back_as_the_same_reason() -> None:
    """A gateway in front of a gateway: the finish reason survives both hops."""
    for reason, name in FINISH_TO_OPENAI.items():
        expected = "stop" if reason == "error" else reason
        assert FINISH_FROM_OPENAI[name] == expected


def test_the_legacy_function_call_reason_reads_as_tool_calls() -> None:
    assert FINISH_FROM_OPENAI["function_call"] == "tool_calls"


def test_tool_calls_carry_their_arguments_as_json_text_unchanged() -> None:
    calls = [ToolCall("call_1", "lookup", '{"q": "x"}'), ToolCall("call_2", "noop", "")]
    lookup = {"name": "lookup", "arguments": '{"q": "x"}'}
    assert tool_calls_to_openai(calls) == [
        {"id": "call_1", "type": "function", "function": lookup},
        {"id": "call_2", "type": "function", "function": {"name": "noop", "arguments": ""}},
    ]
