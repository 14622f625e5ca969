"""Claim extraction: what is a claim, and what is part of one."""

from __future__ import annotations

from llm_gateway.grounding.claims import extract


def claims(text: str) -> list[tuple[str, str]]:
    return [(c.text, c.kind) for c in extract(text)]


def test_numbers_inside_ids_and_dates_are_not_claims() -> None:
    found = claims("i-3abc4def5a6b7c8d9 was created on 2024-03-05 in us-east-1.")
    assert found == [
        ("i-3abc4def5a6b7c8d9", "identifier"),
        ("2024-03-05", "date"),
        ("us-east-1", "identifier"),
    ]


def test_counts_money_percent_and_words() -> None:
    found = dict(claims("You have seven instances costing $1,234.50, CPU at 93%."))
    assert found["seven"] == "count"
    assert found["1,234.50"] == "money"
    assert found["93%"] == "percent"


def test_subjects_and_cues() -> None:
    (claim,) = [c for c in extract("The invoice total is about $540.") if c.kind == "money"]
    assert {"invoice", "total"} <= claim.subject
    assert {"approx", "total"} <= claim.cues


def test_zero_counts() -> None:
    (claim,) = extract("There are no open alerts.")
    assert claim.kind == "count"
    assert claim.value.value == 0
    assert "alert" in claim.subject


def test_states_and_their_negation() -> None:
    found = extract("i-0abcdef12 is not running, and PR #5 was merged.")
    states = [(c.text, "not" in c.cues) for c in found if c.kind == "state"]
    assert states == [("running", True), ("merged", False)]


def test_verbs_are_not_states() -> None:
    assert [c for c in extract("It's running Postgres 15.4.") if c.kind == "state"] == []


def test_names_are_multiword_and_skip_sentence_words() -> None:
    found = claims("The PR was reviewed by Sarah Connor. Yes Monday works.")
    assert ("Sarah Connor", "name") in found
    assert not any(kind == "name" and "Monday" in text for text, kind in found)


def test_list_numbering_is_not_a_claim() -> None:
    assert claims("1. Restart it\n2. Check it") == []
