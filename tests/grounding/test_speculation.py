"""Hedges and blocked phrases: whole words, outside quotes and code."""

from __future__ import annotations

from llm_gateway.grounding.speculation import find_phrases

BLOCKED = ("I think", "probably", "might be", "I assume")


def phrases(answer: str) -> list[tuple[str, str]]:
    return [(p.phrase, p.source) for p in find_phrases(answer, True, BLOCKED)]


def test_builtins_and_blocked_are_told_apart() -> None:
    found = phrases("It is probably running and seems to be fine.")
    assert ("probably", "speculative") in found
    assert ("probably", "blocked") in found
    assert ("seems to", "speculative") in found


def test_whole_words_only() -> None:
    assert phrases("That is improbably warm and unlikely to last.") == []


def test_quoted_and_code_are_not_hedges() -> None:
    assert phrases('You said "it might be down"; `maybe` is a flag.') == []


def test_should_be_is_a_hedge_only_before_a_state() -> None:
    assert phrases("You should be careful.") == []
    assert phrases("The instance should be running.") == [("should be running", "speculative")]


def test_without_the_builtins_only_blocked_phrases() -> None:
    found = find_phrases("Perhaps. I think so.", False, ("I think",))
    assert [(p.phrase, p.source) for p in found] == [("I think", "blocked")]


def test_likely_renders_a_forecast_probability() -> None:
    from llm_gateway.grounding import Conversation, ToolResult, check

    forecast = ToolResult("c1", "get_forecast", "{}", '{"precip_probability_pct": 90}')
    assert check(Conversation((forecast,)), "Very likely: a 90% chance of rain.").grounded
    plain = ToolResult("c1", "get_status", "{}", '{"state": "running"}')
    assert not check(Conversation((plain,)), "It is likely running.").grounded
