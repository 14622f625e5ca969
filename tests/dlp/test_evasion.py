"""Evasions: values split over messages, encoded, written with lookalike letters,
other digit separators, obfuscated e-mail addresses."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from urllib.parse import quote

import pytest

from llm_gateway.dlp.decoding import MAX_DECODED, Budget, encoded_spans
from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action
from llm_gateway.dlp.service import DlpService
from llm_gateway.settings import load_settings
from tests.dlp.samples import ALNUM, SECRET_SAMPLES, luhn_complete, rand

REPO = Path(__file__).resolve().parents[2]
TOKEN = SECRET_SAMPLES["secret.github_pat"][1]
CARD = luhn_complete("4", 16)


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(None)


def rules(engine: RuleEngine, text: str) -> list[str]:
    return [f.rule for f in engine.scan(text)]


# --- across messages -----------------------------------------------------------


async def _service(tmp_path: Path) -> DlpService:
    settings = load_settings({"DLP_NER": "off", "DATA_DIR": str(tmp_path)}, env_file=None)
    return await DlpService.start(settings.dlp, settings.state)


@pytest.mark.parametrize(
    ("value", "entity"),
    [(TOKEN, "GITHUB_TOKEN"), (CARD, "CREDIT_CARD"), ("219-09-9988", "US_SSN")],
)
async def test_a_value_split_over_two_messages_is_found_in_both(
    tmp_path: Path, value: str, entity: str
) -> None:
    dlp = await _service(tmp_path)
    try:
        cut = len(value) // 2
        texts = ["hello", f"here is the first half {value[:cut]}", f"{value[cut:]} and the rest"]
        per_text = dlp.scan_rules_many(texts)
    finally:
        await dlp.aclose()
    assert per_text[0] == []
    (first,) = [f for f in per_text[1] if f.entity == entity]
    (second,) = [f for f in per_text[2] if f.entity == entity]
    assert texts[1][first.start : first.end] == value[:cut]
    assert texts[2][second.start : second.end] == value[cut:]


async def test_whole_values_in_neighbouring_messages_are_not_merged(tmp_path: Path) -> None:
    dlp = await _service(tmp_path)
    try:
        texts = ["mail a@b.io, ssn 219-09-9988", "next message: nothing here"]
        per_text = dlp.scan_rules_many(texts)
    finally:
        await dlp.aclose()
    assert [texts[0][f.start : f.end] for f in per_text[0]] == ["a@b.io", "219-09-9988"]
    assert per_text[1] == []


# --- encodings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
        lambda s: s.encode().hex(),
        lambda s: quote(s, safe=""),
        lambda s: "".join(f"&#{ord(c)};" for c in s),
        lambda s: html.escape(s).replace("_", "&#95;"),
        lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
    ],
    ids=["base64", "base64url", "hex", "url", "html-decimal", "html-named", "unicode-escapes"],
)
def test_encoded_secrets_are_found_and_cover_the_encoded_span(
    engine: RuleEngine, encode: object
) -> None:
    assert callable(encode)
    encoded = encode(f"token={TOKEN}")
    text = f"decode this: {encoded} please"
    hits = [f for f in engine.scan(text) if f.rule == "secret.github_pat"]
    assert len(hits) == 1
    assert (
        encoded in text[hits[0].start : hits[0].end] or text[hits[0].start : hits[0].end] in encoded
    )
    assert hits[0].action is Action.BLOCK


def test_two_layers_are_decoded_but_not_three(engine: RuleEngine) -> None:
    once = base64.b64encode(f"key {TOKEN}".encode()).decode()
    twice = base64.b64encode(once.encode()).decode()
    thrice = base64.b64encode(twice.encode()).decode()
    assert "secret.github_pat" in rules(engine, f"x {twice} y")
    assert "secret.github_pat" not in rules(engine, f"x {thrice} y")


@pytest.mark.parametrize(
    "text",
    [
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "commit 3f2c1a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
        "img data:image/png;base64," + base64.b64encode(bytes(range(256)) * 4).decode(),
        "aGVsbG8gd29ybGQsIG5vdGhpbmcgc2Vuc2l0aXZlIGhlcmU=",  # "hello world, nothing sensitive here"
        "search?q=caf%C3%A9%20au%20lait&lang=fr",
    ],
)
def test_encoded_harmless_text_raises_nothing(engine: RuleEngine, text: str) -> None:
    assert [f.rule for f in engine.scan(text) if f.entity != "URL"] == []


def test_decoding_has_a_budget() -> None:
    blob = base64.b64encode(("harmless words " * 40).encode()).decode()
    text = " ".join([blob] * 400)
    budget = Budget()
    decoded = sum(len(d) for _, _, d in encoded_spans(text, budget))
    assert decoded <= MAX_DECODED + len(blob)
    assert budget.chars <= 0


# --- lookalike letters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("lookalike", "rule"),
    [
        (
            "\u0410\u041a\u0406\u0410" + "Q3ZP7XK2M4NB8VR6",
            "secret.aws_access_key_id",
        ),  # Cyrillic A, KA, I, A
        ("gh\u0440_" + TOKEN[4:], "secret.github_pat"),  # Cyrillic er
        ("\u0455k_live_" + rand(ALNUM, 24), "secret.stripe_secret_key"),  # Cyrillic dze
    ],
)
def test_lookalike_letters_in_a_prefix_are_read_as_latin(
    engine: RuleEngine, lookalike: str, rule: str
) -> None:
    text = f"key: {lookalike} ok"
    (hit,) = [f for f in engine.scan(text) if f.rule == rule]
    assert text[hit.start : hit.end] == lookalike


def test_russian_prose_raises_nothing(engine: RuleEngine) -> None:
    assert engine.scan("Привет, как дела? Это обычный текст без секретов.") == []


# --- digit separators ----------------------------------------------------------


def test_card_groups_with_mixed_separators_are_not_a_card(engine: RuleEngine) -> None:
    value = f"{CARD[:4]} - {CARD[4:8]} {CARD[8:12]} {CARD[12:]}"
    assert [f for f in engine.scan(f"ref {value}") if f.entity == "CREDIT_CARD"] == []


@pytest.mark.parametrize("sep", ["/", "_", ",", "\u2013", "|", "  ", " - ", " / ", " \u2013 "])
def test_card_groups_with_other_separators(engine: RuleEngine, sep: str) -> None:
    value = sep.join(CARD[i : i + 4] for i in range(0, 16, 4))
    text = f"card {value} exp 09/27"
    assert [text[f.start : f.end] for f in engine.scan(text) if f.entity == "CREDIT_CARD"] == [
        value
    ]


@pytest.mark.parametrize("sep", ["/", "_", "|", "\u2013"])
def test_digits_typed_apart_with_other_separators(engine: RuleEngine, sep: str) -> None:
    value = sep.join(CARD)
    assert "pii.credit_card" in rules(engine, f"number {value} thanks")


# --- obfuscated e-mail ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "jane.roe [at] example [dot] com",
        "jane.roe(at)example.com",
        "jane.roe [at] mail [dot] example [dot] co [dot] uk",
        "JANE {at} EXAMPLE {dot} ORG",
    ],
)
def test_obfuscated_emails(engine: RuleEngine, value: str) -> None:
    text = f"write to {value} soon"
    assert [text[f.start : f.end] for f in engine.scan(text) if f.entity == "EMAIL_ADDRESS"] == [
        value
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("mail bob AT example DOT com", "bob AT example DOT com"),
        ("jane.roe AT mail.example DOT co DOT uk", "jane.roe AT mail.example DOT co DOT uk"),
    ],
)
def test_emails_spelled_out_in_capitals(engine: RuleEngine, text: str, value: str) -> None:
    assert [text[f.start : f.end] for f in engine.scan(text) if f.entity == "EMAIL_ADDRESS"] == [
        value
    ]


@pytest.mark.parametrize(
    "text", ["look at this dot com bubble", "MEET AT NOON DOT", "WE ARRIVE AT HOME DOT COM"]
)
def test_at_and_dot_in_prose_are_not_an_email(engine: RuleEngine, text: str) -> None:
    assert [f for f in engine.scan(text) if f.entity == "EMAIL_ADDRESS"] == []


def test_bracketed_at_alone_is_not_an_email(engine: RuleEngine) -> None:
    assert engine.scan("meet [at] noon, bring [dot] points") == []
