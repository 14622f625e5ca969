"""The provider-neutral script: directive parsing, echo, chunking, limits and counts."""

from __future__ import annotations

from llm_gateway.emulators.behaviour import (
    Limits,
    Script,
    Turn,
    build_script,
    find_directive,
    parse_directive,
    split_words,
)


def _script(*turns: Turn, stream: bool = False, limits: Limits | None = None) -> Script:
    return build_script(turns, reply_prefix="Echo: ", stream=stream, limits=limits)


def test_directive_json_may_contain_brackets_and_is_removed() -> None:
    text = 'before [[emulate {"reply": "a ]] b", "chunks": [["x"]][0]}]] after'
    assert find_directive(text) is None  # not JSON: left alone
    text = 'before [[emulate {"reply": "a ]] b", "tool_calls": [{"name": "f"}]}]] after'
    found = find_directive(text)
    assert found is not None
    assert found[0]["reply"] == "a ]] b"
    assert found[1] == "before  after"


def test_non_object_or_malformed_directive_is_ignored() -> None:
    assert find_directive("x [[emulate [1, 2]]]") is None
    assert find_directive("x [[emulate {oops}]]") is None
    script = _script(Turn("user", ("hi [[emulate {oops}]]",)))
    assert script.text == "Echo: hi [[emulate {oops}]]"


def test_wrongly_typed_keys_fall_back_to_defaults() -> None:
    directive = parse_directive(
        {
            "status": "429",
            "latency_ms": True,
            "hang": "yes",
            "chunks": "abc",
            "usage": {"input": -3},
        }
    )
    assert directive.error_status is None
    assert directive.latency_ms is None
    assert not directive.hang
    assert directive.chunks is None
    assert directive.usage_input is None


def test_split_words_keeps_every_character() -> None:
    text = "  Hello,  big\nworld! "
    parts = split_words(text)
    assert "".join(parts) == text
    assert parts == ["  Hello,  ", "big\n", "world! "]
    assert split_words("") == []
    assert split_words("   ") == ["   "]


def test_default_echo_and_word_counts() -> None:
    script = _script(Turn("system", ("rules here",)), Turn("user", ("  what now? ",)))
    assert script.text == "Echo: what now?"
    assert (script.input_tokens, script.output_tokens) == (4, 3)
    assert script.finish == "stop"


def test_tool_result_default_and_earlier_directive_does_not_fire_again() -> None:
    ask = 'go [[emulate {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}]]'
    first = _script(Turn("user", (ask,)))
    assert first.tool_calls[0].name == "f"
    assert first.finish == "tool_calls"
    assert first.text == ""
    second = _script(Turn("user", (ask,)), Turn("assistant"), Turn("tool", tool_results=("42",)))
    assert second.tool_calls == ()
    assert second.text == "Tool said: 42"
    assert second.input_tokens == 2  # "go" + "42": directives are never counted


def test_directive_in_a_tool_result_is_honoured() -> None:
    script = _script(Turn("tool", tool_results=('ok [[emulate {"reply": "done"}]]',)))
    assert script.text == "done"


def test_then_answers_the_next_turn_only_when_it_has_no_directive_of_its_own() -> None:
    result = 'rows: 5 [[emulate {"reply": "seven", "then": {"reply": "five"}}]]'
    tool = Turn("tool", tool_results=(result,))
    assert _script(tool).text == "seven"
    follow_up = _script(tool, Turn("assistant", ("seven",)), Turn("user", ("check again",)))
    assert follow_up.text == "five"
    own = Turn("user", ('again [[emulate {"reply": "mine"}]]',))
    assert _script(tool, Turn("assistant", ("seven",)), own).text == "mine"
    later = _script(
        tool, Turn("assistant"), Turn("user", ("a",)), Turn("assistant"), Turn("user", ("b",))
    )
    assert later.text == "Echo: b"  # only the next turn: a scripted answer never repeats


def test_limits_cut_text_and_chunks_consistently() -> None:
    turn = Turn("user", ('x [[emulate {"chunks": ["ab", "cd ", "ef gh"]}]]',))
    script = _script(turn, stream=True, limits=Limits(stop=("e",)))
    assert script.chunks == ("ab", "cd ")
    assert script.text == "abcd "
    assert (script.finish, script.stop_sequence) == ("stop_sequence", "e")
    words = _script(Turn("user", ("one two three",)), limits=Limits(max_words=2))
    assert (words.text, words.finish, words.output_tokens) == ("Echo: one", "length", 2)


def test_finish_aliases_and_forced_usage() -> None:
    turn = Turn("user", ('x [[emulate {"finish": "max_tokens", "usage": {"output": 9}}]]',))
    script = _script(turn)
    assert script.finish == "length"
    assert (script.input_tokens, script.output_tokens) == (1, 9)
    custom = _script(Turn("user", ('x [[emulate {"finish": "pause_turn"}]]',)))
    assert custom.finish == "pause_turn"


def test_a_concealed_value_is_revealed_only_by_the_emulator() -> None:
    from llm_gateway.dlp.engine import RuleEngine
    from llm_gateway.emulators.behaviour import conceal, find_directive

    token = "ghp_" + "Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4"
    text = '[[emulate {"reply": "the key is ' + conceal(token) + '"}]]'
    assert RuleEngine.load(None).scan(text) == []  # deeper than DLP decodes
    found = find_directive(text)
    assert found is not None
    assert found[0]["reply"] == f"the key is {token}"
