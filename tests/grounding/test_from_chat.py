"""A canonical chat request read as the checker's conversation, and the file's options."""

from __future__ import annotations

from llm_gateway.chat import ChatRequest, Message, TextPart, ToolCall
from llm_gateway.config.guardrails import Guardrails
from llm_gateway.grounding import Options
from llm_gateway.grounding.from_chat import conversation_of
from llm_gateway.grounding.options import options_of


def _text(role: str, text: str, **kw: object) -> Message:
    return Message(role, [TextPart(text)], **kw)  # type: ignore[arg-type]


def test_each_tool_result_is_paired_with_the_call_it_answers() -> None:
    chat = ChatRequest(
        model="m",
        system="You are an ops agent.",
        messages=[
            _text("user", "Which instances are stopped?"),
            Message("assistant", [TextPart("Checking.")], tool_calls=[
                ToolCall("c1", "describe_instances", '{"state": "stopped"}'),
                ToolCall("c2", "get_bill", "{}"),
            ]),
            _text("tool", '{"Instances": []}', tool_call_id="c1"),
            _text("tool", "access denied", tool_call_id="c2", is_error=True),
            _text("tool", "orphan", tool_call_id="c9"),
        ],
    )  # fmt: skip
    conversation = conversation_of(chat)
    assert conversation is not None
    first, second, orphan = conversation.tools
    assert (first.call_id, first.name, first.arguments) == (
        "c1", "describe_instances", '{"state": "stopped"}',
    )  # fmt: skip
    assert first.output == '{"Instances": []}'
    assert (second.name, second.is_error) == ("get_bill", True)
    assert (orphan.name, orphan.arguments) == (None, "")
    assert conversation.question == "Which instances are stopped?"
    assert conversation.context == "You are an ops agent.\nChecking."


def test_a_conversation_without_tool_results_has_nothing_to_check() -> None:
    chat = ChatRequest(model="m", messages=[_text("user", "hello")])
    assert conversation_of(chat) is None


def test_the_files_options_apply_only_when_grounding_is_enabled() -> None:
    assert options_of(Guardrails()) == Options()
    configured = Guardrails.model_validate(
        {
            "grounding": {"enabled": True, "require_tool_citation": True,
                          "max_unsupported_claims": 2, "confidence_threshold": 0.5},
            "validation": {"flag_speculative_language": False, "blocked_phrases": ["maybe"]},
        }
    )  # fmt: skip
    options = options_of(configured)
    assert options.require_tool_citation
    assert (options.max_unsupported_claims, options.confidence_threshold) == (2, 0.5)
    assert not options.flag_speculative_language
    assert options.detect_contradictions  # not turned off
    assert options.blocked_phrases == ("maybe",)
