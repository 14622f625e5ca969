"""What the NER model is shown: code masked and ALL-CAPS title-cased, offsets unchanged."""

from __future__ import annotations

import pytest

from llm_gateway.dlp.ner_text import mask_code, prepare, title_case_caps

PROSE = "Ask Maria Garcia, J.R.R. Tolkien or Ronald McDonald, e.g. in St. Louis."


def _masked(text: str) -> set[str]:
    """The words of ``text`` that masking hid."""
    shown = mask_code(text)
    assert len(shown) == len(text)
    return {word for word in text.split() if word not in shown.split()}


def test_prose_is_shown_as_it_is() -> None:
    assert mask_code(PROSE) == PROSE
    assert mask_code("") == ""


def test_fenced_blocks_are_masked_line_breaks_kept() -> None:
    text = "Dear Maria,\n```python\nfrom jordan import Paris\nx = Path('Lisbon')\n```\nBye, Ada"
    shown = mask_code(text)

    assert len(shown) == len(text)
    assert shown.count("\n") == text.count("\n")
    assert "Paris" not in shown
    assert "Lisbon" not in shown
    assert "jordan" not in shown
    assert shown.startswith("Dear Maria,\n")
    assert shown.endswith("\nBye, Ada")


def test_an_unclosed_fence_runs_to_the_end() -> None:
    text = "See below.\n~~~\nclass Washington:\n    pass\n"
    shown = mask_code(text)
    assert shown.startswith("See below.\n")
    assert "Washington" not in shown


def test_a_name_before_a_spaced_parenthesis_is_prose() -> None:
    text = "Ask Maria Garcia (our CEO) about it."
    assert mask_code(text) == text


def test_inline_code_is_masked() -> None:
    assert _masked("Run `Denver.start()` then ask Maria Garcia.") == {"`Denver.start()`"}


@pytest.mark.parametrize(
    "token",
    [
        "jordan_client",
        "MARIA_GARCIA",
        "getUserName",
        "os.path.join",
        "Paris.settings",
        "connect(",
        "greet(Jordan)",
        "Victoria(Base)",
        "user=Maria",
        "--host=lisbon",
        "std::vector",
        "Washington::Client",
    ],
)
def test_identifier_like_tokens_are_masked(token: str) -> None:
    text = f"call {token} now"
    shown = mask_code(text)
    assert len(shown) == len(text)
    assert token not in shown
    assert shown.startswith("call ")
    assert shown.endswith(" now")


@pytest.mark.parametrize("name", ["McDonald", "DeShawn", "J.R.R.", "O'Brien", "Jean-Luc"])
def test_names_that_look_a_little_like_code_are_kept(name: str) -> None:
    text = f"Ask {name} Smith."
    assert mask_code(text) == text


def test_all_caps_words_are_title_cased_in_place() -> None:
    text = "MARIA GARCIA met JOHN in PARIS. A I ok Élan ÉMILE"
    shown = title_case_caps(text)
    assert shown == "Maria Garcia met John in Paris. A I ok Élan Émile"
    assert len(shown) == len(text)


def test_a_word_whose_case_mapping_changes_its_length_is_left_alone() -> None:
    text = "DİYARBAKIR and STRASSE"  # "İ".lower() is two characters
    shown = title_case_caps(text)
    assert shown == "DİYARBAKIR and Strasse"


def test_prepare_title_cases_only_when_asked() -> None:
    text = "MARIA GARCIA wrote `get_user()`"
    assert prepare(text) == "MARIA GARCIA wrote " + " " * len("`get_user()`")
    assert prepare(text, all_caps=True).startswith("Maria Garcia wrote ")
