"""Offline token estimates (used when a provider reports no usage)."""

from __future__ import annotations

import pytest

from llm_gateway.tokens import estimate_prompt, estimate_text, quick_estimate


def test_empty_text_is_zero() -> None:
    assert estimate_text("") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 2),  # a quarter of the characters, rounded up
        ("The quick brown fox jumps over the lazy dog.", 11),
        ("a, b, c, d!", 8),  # 4 words + 4 symbols outnumber a quarter of the characters
        ("{}[]()<>", 8),
    ],
)
def test_short_texts(text: str, expected: int) -> None:
    assert estimate_text(text) == expected


def test_estimate_is_never_below_a_quarter_of_the_characters() -> None:
    for text in ["x", "word " * 50, "supercalifragilisticexpialidocious" * 3, "é" * 10]:
        assert estimate_text(text) >= (len(text) + 3) // 4


def test_long_texts_use_the_character_rule_alone() -> None:
    text = "word " * 1000  # 5000 characters
    assert estimate_text(text) == 1250


def test_punctuation_counts_each_symbol() -> None:
    assert estimate_text("?!" * 50) == 100


def test_cjk_text_is_not_estimated_like_english() -> None:
    """The module says non-ASCII text has fewer characters per token than English, so the
    estimate must exceed the English rule (a quarter of the characters). CJK has no spaces,
    so counting ``\\w+`` runs sees one "word" per sentence; real tokenizers spend about one
    token per one or two CJK characters."""
    text = "这是一个用于测试的中文句子"
    assert estimate_text(text) > (len(text) + 3) // 4


def test_prompt_adds_per_message_overhead() -> None:
    assert estimate_prompt([]) == 0
    assert estimate_prompt([""]) == 4
    assert estimate_prompt(["hello", "hello"]) == 2 * (2 + 4)
    texts = ["You are terse.", "What is 2+2?"]
    assert estimate_prompt(texts) == sum(estimate_text(t) for t in texts) + 4 * len(texts)


def test_the_ascii_fast_path_counts_like_the_pattern() -> None:
    """ASCII text takes string methods instead of the pattern; both must agree exactly."""
    import random
    import string

    from llm_gateway.tokens import _PIECES

    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 300)))
        by_pattern = max((len(text) + 3) // 4, len(_PIECES.findall(text)))
        assert estimate_text(text) == by_pattern, repr(text)


def test_the_quick_estimate_is_the_character_rule() -> None:
    assert quick_estimate(["abcd" * 25, ""]) == 25 + 4 + 0 + 4
