"""The normalised view, and findings mapped back onto the characters the user sent."""

from __future__ import annotations

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Finding
from llm_gateway.dlp.normalize import char_offsets, join_digit_runs, normalise
from tests.dlp.samples import arabic_indic, fullwidth

ZWSP, ZWJ, RLO, BOM = "\u200b", "\u200d", "\u202e", "\ufeff"


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(None)


def only(findings: list[Finding], rule: str) -> Finding:
    (finding,) = [f for f in findings if f.rule == rule]
    return finding


def test_ascii_is_scanned_as_is_without_a_map() -> None:
    view = normalise("plain text 219-09-9988")
    assert view.text == "plain text 219-09-9988"
    assert view.mapping is None
    assert view.original_span(3, 7) == (3, 7)


def test_normalised_non_ascii_text_needs_no_map_either() -> None:
    view = normalise("café résumé 東京")
    assert view.text == "café résumé 東京"
    assert view.mapping is None


def test_zero_width_and_bidi_characters_are_removed_and_mapped() -> None:
    text = f"a{ZWSP}b{RLO}{ZWJ}c{BOM}"
    view = normalise(text)
    assert view.text == "abc"
    assert view.original_span(0, 3) == (0, 6)  # a .. c, the trailing BOM is not covered
    assert view.original_span(1, 2) == (2, 3)
    assert view.original_span(2, 3) == (5, 6)


def test_fullwidth_and_other_script_digits_become_ascii() -> None:
    devanagari_nine = "\u096f"
    view = normalise(f"{fullwidth('SSN 219')} {arabic_indic('34')} {devanagari_nine}")
    assert view.text == "SSN 219 34 9"
    assert view.original_span(4, 7) == (4, 7)  # one for one: offsets unchanged


def test_a_character_that_expands_maps_as_a_whole() -> None:
    text = "ﬁle ① x"
    view = normalise(text)
    assert view.text == "file 1 x"
    assert view.original_span(0, 1) == (0, 1)  # "f" of the ligature: the whole ligature
    assert view.original_span(1, 4) == (0, 3)  # "ile": from the ligature to "e"
    assert view.original_span(5, 6) == (4, 5)


def test_tag_characters_reveal_the_ascii_they_hide() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "key")
    view = normalise(f"ok{hidden}!")
    assert view.text == "okkey!"
    assert view.original_span(2, 5) == (2, 5)


def test_lone_surrogates_are_replaced_so_the_text_encodes() -> None:
    view = normalise("a\ud800b")
    assert view.text == "a\ufffdb"
    view.text.encode("utf-8")


def test_digit_runs_are_joined_with_their_positions() -> None:
    view = normalise("card 4 1 1 1 - 2 2 end")
    joined, runs = join_digit_runs(view, [(5, 18)])
    assert joined.text == "card 411122 end"
    assert runs == [(5, 11)]
    assert joined.original_span(5, 11) == (5, 18)
    assert joined.original_span(9, 11) == (15, 18)  # the two 2s
    assert joined.original_span(12, 15) == (19, 22)  # "end", after the run


def test_char_offsets_walk_utf8_once() -> None:
    data = "é1€2😀3".encode()
    offsets = char_offsets(data, [0, 2, 3, 6, 11, 12])
    assert offsets == {0: 0, 2: 1, 3: 2, 6: 3, 11: 5, 12: 6}


# --- evasion, end to end: the finding covers what the user typed -------------


def test_zero_width_characters_inside_an_ssn(engine: RuleEngine) -> None:
    text = f"my SSN is 219{ZWSP}-09-99{ZWJ}88, thanks"
    finding = only(engine.scan(text), "pii.us_ssn")
    assert text[finding.start : finding.end] == f"219{ZWSP}-09-99{ZWJ}88"
    assert finding.label == "SSN"


def test_fullwidth_digits_in_an_ssn(engine: RuleEngine) -> None:
    text = f"SSN: {fullwidth('219-09-9988')}."
    finding = only(engine.scan(text), "pii.us_ssn")
    assert text[finding.start : finding.end] == fullwidth("219-09-9988")


def test_a_card_typed_one_digit_at_a_time(engine: RuleEngine) -> None:
    text = "use card 4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1 for the order"
    finding = only(engine.scan(text), "pii.credit_card")
    assert text[finding.start : finding.end] == "4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1"


def test_a_card_with_dots_and_zero_width_spaces(engine: RuleEngine) -> None:
    text = f"pay with 4.1.1.1.{ZWSP}1.1.1.1.1.1.1.1.1.1.1.1 now"
    finding = only(engine.scan(text), "pii.credit_card")
    assert text[finding.start : finding.end] == f"4.1.1.1.{ZWSP}1.1.1.1.1.1.1.1.1.1.1.1"


def test_an_ssn_typed_apart_is_scored_like_any_bare_ssn(engine: RuleEngine) -> None:
    text = "my social security number: 2 1 9 0 9 9 9 8 8."
    finding = only(engine.scan(text), "pii.us_ssn_unformatted")
    assert text[finding.start : finding.end] == "2 1 9 0 9 9 9 8 8"
    assert finding.score == 0.85  # confirmed by its context
    (weak,) = engine.scan("numbers 2 1 9 0 9 9 9 8 8 tonight")
    assert weak.score == 0.5
    assert engine.scan("order number 2 1 9 0 9 9 9 8 8") == []


def test_arabic_indic_digits_in_a_card(engine: RuleEngine) -> None:
    card = arabic_indic("4111 1111 1111 1111")
    text = f"card {card} ok"
    finding = only(engine.scan(text), "pii.credit_card")
    assert text[finding.start : finding.end] == card


def test_a_secret_hidden_in_tag_characters(engine: RuleEngine) -> None:
    token = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
    text = "hello" + "".join(chr(0xE0000 + ord(c)) for c in f" {token} ") + "world"
    finding = only(engine.scan(text), "secret.github_pat")
    assert "".join(chr(ord(c) - 0xE0000) for c in text[finding.start : finding.end]) == token


def test_offsets_after_non_ascii_text_are_character_offsets(engine: RuleEngine) -> None:
    text = "Grüße aus München 😀 — mail jörg@example.com or call +49 30 12345678"
    findings = engine.scan(text)
    assert [text[f.start : f.end] for f in findings] == ["jörg@example.com", "+49 30 12345678"]


def test_normalising_is_linear_on_evasion_heavy_text() -> None:
    text = f"1{ZWSP}" * 50_000 + "ﬁ①" * 10_000
    view = normalise(text)
    assert len(view.text) == 50_000 + 30_000
    assert view.original_span(0, len(view.text)) == (0, len(text))
