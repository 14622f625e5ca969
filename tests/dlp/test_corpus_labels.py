"""The evaluation corpus's gold labels are right, so its scores mean something."""

from __future__ import annotations

import ipaddress
import random
import re
from collections import Counter

import pytest
from bench import dlp_values as v
from bench.dlp_corpus import ENTITIES, Sample, build_corpus

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MAC = re.compile(
    r"[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"
)
IBAN_LENGTHS = {"DE": 22, "GB": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "CH": 21, "BE": 16,
                "PL": 28, "AT": 20}  # fmt: skip


@pytest.fixture(scope="module")
def corpus() -> list[Sample]:
    return build_corpus()


def is_valid(entity: str, value: str) -> bool:
    if entity == "CREDIT_CARD":
        return v.luhn_valid(value) and len(re.sub(r"\D", "", value)) in (14, 15, 16)
    if entity == "US_SSN":
        return v.ssn_valid(value)
    if entity == "EMAIL_ADDRESS":
        return EMAIL.fullmatch(value) is not None
    if entity == "PHONE_NUMBER":
        return v.phone_valid(value)
    if entity == "IP_ADDRESS":
        ipaddress.ip_address(value)
        return True
    if entity == "IBAN_CODE":
        compact = value.replace(" ", "")
        return v.iban_mod97(compact) == 1 and len(compact) == IBAN_LENGTHS[compact[:2]]
    if entity == "MAC_ADDRESS":
        return MAC.fullmatch(value) is not None
    raise AssertionError(entity)


def test_the_corpus_is_deterministic(corpus: list[Sample]) -> None:
    assert build_corpus() == corpus
    assert build_corpus(seed=1) != corpus


def test_the_corpus_is_large_and_covers_every_entity(corpus: list[Sample]) -> None:
    gold = Counter(span.entity for sample in corpus for span in sample.spans)
    assert len(corpus) >= 500
    assert set(gold) == set(ENTITIES)
    assert min(gold.values()) >= 60
    assert sum(sample.kind == "negative" for sample in corpus) >= 250


def test_gold_spans_cover_exactly_the_inserted_values(corpus: list[Sample]) -> None:
    for sample in corpus:
        for span in sample.spans:
            assert sample.text[span.start : span.end] == span.value, sample
            # a value ends at a word boundary, never in the middle of other text
            assert span.end == len(sample.text) or not sample.text[span.end].isalnum(), sample


def test_every_gold_value_passes_its_validator(corpus: list[Sample]) -> None:
    for sample in corpus:
        for span in sample.spans:
            assert is_valid(span.entity, span.value), (span.entity, span.value)


def test_hard_negatives_have_no_gold_spans_and_fail_the_validators(corpus: list[Sample]) -> None:
    negatives = [s for s in corpus if s.kind == "negative"]
    assert all(not s.spans for s in negatives)
    families = Counter(s.family for s in negatives)
    assert {"negative/uuid", "negative/non_luhn_card", "negative/invalid_ssn",
            "negative/invalid_iban", "negative/code"} <= set(families)  # fmt: skip
    for sample in negatives:
        if sample.family == "negative/non_luhn_card":
            assert not v.luhn_valid(inserted(sample, r"\d[\d -]+\d")), sample.text
        if sample.family == "negative/invalid_ssn":
            assert not v.ssn_valid(inserted(sample, r"\d{3}-\d{2}-\d{4}")), sample.text
        if sample.family == "negative/invalid_iban":
            iban = inserted(sample, r"[A-Z]{2}\d{2}[A-Z0-9 ]+[A-Z0-9]")
            assert v.iban_mod97(iban) != 1, sample.text


def inserted(sample: Sample, pattern: str) -> str:
    found = re.search(pattern, sample.text)
    assert found is not None, sample.text
    return found.group()


def test_card_brands_and_formats_are_all_represented(corpus: list[Sample]) -> None:
    families = {s.family for s in corpus if s.family.startswith("CREDIT_CARD/")}
    assert families == {f"CREDIT_CARD/{brand}" for brand in v.CARD_BRANDS}
    cards = [span.value for s in corpus for span in s.spans if span.entity == "CREDIT_CARD"]
    assert any(" " in c for c in cards)
    assert any("-" in c for c in cards)
    assert any(c.isdigit() for c in cards)


@pytest.mark.parametrize("seed", range(20))
def test_value_generators_agree_with_their_validators(seed: int) -> None:
    rng = random.Random(seed)
    for brand in v.CARD_BRANDS:
        assert v.luhn_valid(v.card(rng, brand, " "))
        assert not v.luhn_valid(v.card(rng, brand, "", valid=False))
    for country in v.IBAN_LAYOUTS:
        assert v.iban_mod97(v.iban(rng, country, spaced=True)) == 1
        assert v.iban_mod97(v.iban(rng, country, spaced=False, valid=False)) != 1
    assert v.ssn_valid(v.ssn(rng))
    assert not v.ssn_valid(v.invalid_ssn(rng))
    for region in v.PHONE_REGIONS:
        assert v.phone_valid(v.phone(rng, region), (region,))


def test_known_check_digits() -> None:
    assert v.luhn_valid("4111 1111 1111 1111")
    assert not v.luhn_valid("4111 1111 1111 1112")
    assert v.iban_mod97("GB82 WEST 1234 5698 7654 32") == 1
    assert v.iban_mod97("DE89370400440532013000") == 1
    assert not v.ssn_valid("123-45-6789")
    assert not v.ssn_valid("000-12-3456")
    assert not v.ssn_valid("666-12-3456")
    assert v.ssn_valid("536-90-4399")
