"""Anthropic's tables and encoders, which the front door and the adapter share."""

from __future__ import annotations

from typing import get_args

import pytest

from llm_gateway.chat import FinishReason, ToolCall
from llm_gateway.errors import InvalidRequest
from llm_gateway.wire.anthropic import (
    FINISH_FROM_ANTHROPIC,
    FINISH_TO_ANTHROPIC,
    answered_tool_input,
    content_blocks,
    tool_input,
)


def test_every_finish_reason_has_an_anthropic_name() -> None:
    assert set(FINISH_TO_ANTHROPIC) == set(get_args(FinishReason))


def test_what_the_gateway_writes_it_reads_back_as_the_same_reason() -> None:
    for reason, name in FINISH_TO_ANTHROPIC.items():
        expected = "stop" if reason == "error" else reason
        assert FINISH_FROM_ANTHROPIC[name] == expected


def test_tool_input_is_the_arguments_as_an_object() -> None:
    assert tool_input(ToolCall("t1", "f", '{"a": [1, 2]}')) == {"a": [1, 2]}
    assert tool_input(ToolCall("t1", "f", "  ")) == {}


def test_broken_arguments_in_a_callers_history_are_the_callers_mistake() -> None:
    with pytest.raises(InvalidRequest) as caught:
        tool_input(ToolCall("t1", "f", '{"a": '))
    assert caught.value.code == "invalid_tool_call"


def test_broken_arguments_from_a_model_are_passed_on_unparsed() -> None:
    assert answered_tool_input(ToolCall("t1", "f", '{"a": ')) == {"_unparsed_arguments": '{"a": '}


def test_content_blocks_text_first_then_one_block_per_call() -> None:
    calls = [ToolCall("t1", "f", '{"x": 1}')]
    assert content_blocks("hi", calls) == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
    ]
    assert content_blocks("", []) == []


def test_content_blocks_of_an_answer_tolerate_broken_arguments() -> None:
    broken = [ToolCall("t1", "f", "{")]
    with pytest.raises(InvalidRequest):
        content_blocks("", broken)
    assert content_blocks("", broken, answered=True)[0]["input"] == {"_unparsed_arguments": "{"}
