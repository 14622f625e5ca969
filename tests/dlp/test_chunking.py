"""Cutting long texts into pieces for the NER model."""

from __future__ import annotations

import itertools
import random

import pytest

from llm_gateway.dlp.chunking import chunk_spans, cut_at_break


def assert_tiles(text: str, spans: list[tuple[int, int]], size: int) -> None:
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(0 < end - start <= size for start, end in spans) or text == ""


def test_a_short_text_is_one_piece() -> None:
    assert chunk_spans("Maria Garcia", 100) == [(0, 12)]
    assert chunk_spans("", 100) == [(0, 0)]


def test_pieces_cover_the_text_exactly_once() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta.", "gamma\n", "delta", "\n\n", "epsilon!", "x" * 30]
    text = " ".join(rng.choice(words) for _ in range(5000))
    for size in (50, 333, 1000, 4096):
        assert_tiles(text, chunk_spans(text, size), size)


def test_cuts_prefer_paragraphs_then_lines_then_sentences_then_spaces() -> None:
    paragraph = "Maria Garcia lives in Lisbon. She works in Porto.\n\nNext part"
    assert paragraph[: cut_at_break(paragraph, 0, 55)].endswith("\n\n")
    line = "Maria Garcia lives in Lisbon. She works in Porto.\nNext line"
    assert line[: cut_at_break(line, 0, 55)].endswith("\n")
    sentence = "Maria Garcia lives in Lisbon. She works in Porto and in Braga"
    assert sentence[: cut_at_break(sentence, 0, 58)].endswith("Porto and in ")
    assert sentence[: cut_at_break(sentence, 0, 34)].endswith("Lisbon. ")


def test_a_name_is_never_cut_when_there_is_a_space_nearby() -> None:
    text = "word " * 19 + "Maria Garcia " + "word " * 20
    pieces = [text[s:e] for s, e in chunk_spans(text, 100)]
    assert any("Maria Garcia" in piece for piece in pieces)


def test_text_without_whitespace_is_cut_hard() -> None:
    text = "x" * 250
    assert chunk_spans(text, 100) == [(0, 100), (100, 200), (200, 250)]


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size"):
        chunk_spans("text", 0)
