"""Restoring tokens in answers: whole texts, JSON bodies and streams split anywhere."""

from __future__ import annotations

import random
import time

import orjson
import pytest

from llm_gateway.dlp.restore import StreamRestorer, restore
from llm_gateway.dlp.vault import format_token, token_label

MAPPING = {
    "<PERSON_1>": "Ada Lovelace",
    "<PERSON_2>": "Charles Babbage",
    "<SSN_1>": "219-09-9999",
    "<CREDIT_CARD_12>": "4111 1111 1111 1111",
}
ANSWER = (
    "Dear <PERSON_1>, your SSN <SSN_1> is on file; <PERSON_2> pays with "
    "<CREDIT_CARD_12>. Unknown <PERSON_3> and <SSN_REDACTED> stay; 1 < 2 > 0, <b>ok</b>."
)
EXPECTED = (
    "Dear Ada Lovelace, your SSN 219-09-9999 is on file; Charles Babbage pays with "
    "4111 1111 1111 1111. Unknown <PERSON_3> and <SSN_REDACTED> stay; 1 < 2 > 0, <b>ok</b>."
)


def test_restore_replaces_known_tokens_and_leaves_everything_else() -> None:
    assert restore(ANSWER, MAPPING) == EXPECTED


def test_restore_with_an_empty_mapping_returns_the_text_unchanged() -> None:
    assert restore(ANSWER, {}) == ANSWER
    assert restore("no tokens here", MAPPING) == "no tokens here"


def test_tokens_the_vault_mints_have_the_shape_restore_recognises() -> None:
    token = format_token(token_label("credit-card 2"), 7)
    assert token == "<CREDIT_CARD_2_7>"
    assert restore(f"x{token}y", {token: "V"}) == "xVy"


AWKWARD = {"<PERSON_1>": 'Conan "the" O\'Brien \\ \n', "<LOCATION_1>": "Zürich 🏔"}


def test_restore_in_a_json_body_keeps_it_valid_with_awkward_values() -> None:
    body = orjson.dumps({"choices": [{"message": {"content": "Hi <PERSON_1> from <LOCATION_1>!"}}]})
    restored = orjson.loads(restore(body.decode(), AWKWARD, json_escape=True))
    assert restored["choices"][0]["message"]["content"] == (
        'Hi Conan "the" O\'Brien \\ \n from Zürich 🏔!'
    )


def test_tool_call_arguments_are_restored_as_the_json_they_are() -> None:
    arguments = orjson.dumps({"who": "<PERSON_1>", "where": "<LOCATION_1>"}).decode()
    restored = orjson.loads(restore(arguments, AWKWARD, json_escape=True))
    assert restored == {"who": AWKWARD["<PERSON_1>"], "where": "Zürich 🏔"}


def test_restore_is_linear_on_adversarial_input() -> None:
    nasty = ("<" + "A_1" * 5_000) * 100 + "<" * 200_000  # 1.7 MB, no closing ">"
    started = time.perf_counter()
    assert restore(nasty, MAPPING) == nasty
    assert time.perf_counter() - started < 2.0


def _stream(chunks: list[str], mapping: dict[str, str] = MAPPING) -> str:
    restorer = StreamRestorer(mapping)
    out = [restorer.feed(chunk) for chunk in chunks]
    out.append(restorer.flush())
    return "".join(out)


def test_a_token_split_at_every_position_is_restored() -> None:
    text = "see <PERSON_1> and <CREDIT_CARD_12>"
    for cut in range(len(text) + 1):
        assert _stream([text[:cut], text[cut:]]) == restore(text, MAPPING), cut


def test_a_token_split_three_ways_at_every_pair_of_positions_is_restored() -> None:
    text = "<SSN_1>: x<PERSON_2>y"
    expected = "219-09-9999: xCharles Babbagey"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert _stream([text[:i], text[i:j], text[j:]]) == expected, (i, j)


def test_the_whole_answer_fed_one_character_at_a_time_is_restored() -> None:
    assert _stream(list(ANSWER)) == EXPECTED


def test_random_chunkings_of_the_answer_are_restored() -> None:
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(len(ANSWER) + 1), rng.randint(1, 12)))
        chunks = [ANSWER[a:b] for a, b in zip([0, *cuts], [*cuts, len(ANSWER)], strict=True)]
        assert _stream(chunks) == EXPECTED


def test_text_that_cannot_start_a_known_token_is_released_at_once() -> None:
    restorer = StreamRestorer(MAPPING)
    assert restorer.feed("if a <b and c < d") == "if a <b and c < d"
    assert restorer.feed("<div>") == "<div>"
    assert restorer.feed("<PERSON_9") == "<PERSON_9"  # no such token in the mapping
    assert restorer.feed("<person_1") == "<person_1"
    assert restorer.held == 0


def test_a_possible_token_prefix_is_held_then_released_when_it_diverges() -> None:
    restorer = StreamRestorer(MAPPING)
    assert restorer.feed("Dear <PER") == "Dear "
    assert restorer.held == len("<PER")
    assert restorer.feed("MIT me") == "<PERMIT me"
    assert restorer.held == 0
    assert restorer.feed("<") == ""
    assert restorer.flush() == "<"  # the stream ended: nothing more can come


def test_hold_back_never_exceeds_the_longest_token_minus_one() -> None:
    restorer = StreamRestorer(MAPPING)
    longest = max(map(len, MAPPING))
    assert restorer.max_hold == longest - 1
    rng = random.Random(3)
    alphabet = ["<", ">", "_", "1", "2", "PERSON", "SSN", "CREDIT", "CARD", " ", "x"]
    emitted: list[str] = []
    fed: list[str] = []
    for _ in range(5_000):
        chunk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        fed.append(chunk)
        emitted.append(restorer.feed(chunk))
        assert restorer.held <= restorer.max_hold
    emitted.append(restorer.flush())
    assert "".join(emitted) == restore("".join(fed), MAPPING)


def test_an_empty_mapping_streams_straight_through() -> None:
    restorer = StreamRestorer({})
    assert restorer.feed("<PER") == "<PER"
    assert restorer.held == 0
    assert restorer.flush() == ""


@pytest.mark.parametrize("cut", range(1, len('{"a":"<PERSON_1>"}')))
def test_streamed_json_is_restored_with_escaped_values(cut: int) -> None:
    text = '{"a":"<PERSON_1>"}'
    restorer = StreamRestorer({"<PERSON_1>": 'say "hi"'}, json_escape=True)
    out = restorer.feed(text[:cut]) + restorer.feed(text[cut:]) + restorer.flush()
    assert orjson.loads(out) == {"a": 'say "hi"'}
