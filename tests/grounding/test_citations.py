"""Citation markers: blanked out of the claims' text, attached to their sentences."""

from __future__ import annotations

from llm_gateway.grounding.citations import find_citations, sentence_of, sentences


def test_markers_are_blanked_keeping_offsets() -> None:
    answer = "It is running [tool:call_1]. Next."
    text, citations = find_citations(answer)
    assert len(text) == len(answer)
    assert "call_1" not in text
    assert [c.ref for c in citations] == ["call_1"]


def test_a_trailing_citation_belongs_to_the_sentence_before_it() -> None:
    answer = "Yes. Invoice INV-1 is paid. [tool:get_invoice] Anything else?"
    _, citations = find_citations(answer)
    spans = sentences(answer, citations)
    claim = answer.index("INV-1")
    assert sentence_of(spans, citations[0].start) == sentence_of(spans, claim)
    assert sentence_of(spans, answer.index("Anything")) != sentence_of(spans, claim)


def test_decimals_do_not_end_sentences() -> None:
    spans = sentences("It took 1.5 hours. Then 2.", [])
    assert len(spans) == 2
