"""Structured PII: IBANs of every registry country, IPv6 forms and CIDR, URLs,
national phone formats, SSN/ITIN separators."""

from __future__ import annotations

import pytest

from llm_gateway.dlp.checksums import IBAN_LENGTHS
from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Severity
from tests.dlp.samples import UPPER_ALNUM, iban, luhn_complete, rand


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(None)


def found(engine: RuleEngine, text: str, entity: str) -> list[str]:
    return [text[f.start : f.end] for f in engine.scan(text) if f.entity == entity]


def _grouped(compact: str) -> str:
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _random_iban(country: str) -> str:
    return iban(country, rand(UPPER_ALNUM, IBAN_LENGTHS[country] - 4))


@pytest.mark.parametrize("country", sorted(IBAN_LENGTHS))
def test_every_registry_country_is_found_compact_and_grouped(
    engine: RuleEngine, country: str
) -> None:
    compact = _random_iban(country)
    assert found(engine, f"pay to {compact} now", "IBAN_CODE") == [compact]
    assert found(engine, f"IBAN: {_grouped(compact)}.", "IBAN_CODE") == [_grouped(compact)]


def test_portugal_and_honduras_are_in_the_registry_table() -> None:
    assert (IBAN_LENGTHS["PT"], IBAN_LENGTHS["HN"]) == (25, 28)


def test_lower_case_ibans_are_found(engine: RuleEngine) -> None:
    value = _grouped(_random_iban("DE")).lower()
    assert found(engine, f"iban {value} thanks", "IBAN_CODE") == [value]


@pytest.mark.parametrize("tail", [" EUR 500", " euro", " USD", " CHF 12.50", " REF1 done"])
def test_a_short_word_after_the_number_does_not_defeat_it(engine: RuleEngine, tail: str) -> None:
    value = _grouped(_random_iban("AT"))  # 20 characters: five full groups
    assert len(value.replace(" ", "")) % 4 == 0
    assert found(engine, f"send {value}{tail}", "IBAN_CODE") == [value]


def test_a_wrong_check_digit_is_still_rejected(engine: RuleEngine) -> None:
    good = _random_iban("FR")
    bad = good[:2] + f"{(int(good[2:4]) + 1) % 100:02d}" + good[4:]
    assert found(engine, f"iban {bad}", "IBAN_CODE") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("bind to ::1 on port 8080", "::1"),
        ("listen address :: (unspecified)", "::"),
        ("mapped ::ffff:192.0.2.128 here", "::ffff:192.0.2.128"),
        ("route 2001:db8::/32 via gw", "2001:db8::/32"),
        (
            "full 2001:0db8:0000:0000:0000:ff00:0042:8329 form",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
        ),
        ("link-local fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff:fe23:4567:890a"),
        ("nat64 64:ff9b::192.0.2.33 ok", "64:ff9b::192.0.2.33"),
        ("v4 net 10.0.0.0/8 is private", "10.0.0.0/8"),
    ],
)
def test_ip_forms(engine: RuleEngine, text: str, value: str) -> None:
    assert found(engine, text, "IP_ADDRESS") == [value]


@pytest.mark.parametrize(
    "text", ["f :: Int -> Int", "std::vector<int> v; a::b", "x = y :: z", "abc::def", "dead::beef"]
)
def test_short_ipv6_forms_need_context(engine: RuleEngine, text: str) -> None:
    assert found(engine, text, "IP_ADDRESS") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("visit www.microsoft.com today.", "www.microsoft.com"),
        ("see www.example.co.uk/a/b?c=d#e", "www.example.co.uk/a/b?c=d#e"),
    ],
)
def test_urls_without_a_scheme(engine: RuleEngine, text: str, value: str) -> None:
    assert found(engine, text, "URL") == [value]


@pytest.mark.parametrize("text", ["the www.is great", "www.x", "wwwexample.com"])
def test_www_alone_is_not_a_url(engine: RuleEngine, text: str) -> None:
    assert found(engine, text, "URL") == []


def test_urls_are_their_own_entity_and_only_alert(engine: RuleEngine) -> None:
    text = "docs at https://docs.example.com/guide?x=1 and more"
    (finding,) = [f for f in engine.scan(text) if f.entity == "URL"]
    assert text[finding.start : finding.end] == "https://docs.example.com/guide?x=1"
    assert (finding.action, finding.severity, finding.label) == (Action.ALERT, Severity.LOW, "URL")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call 020 7946 0958 today", "020 7946 0958"),  # GB, trunk 0
        ("Tel. 030 12345678", "030 12345678"),  # DE
        ("appelez le 01 23 45 67 89", "01 23 45 67 89"),  # FR
        ("mobile 98765 43210 pls", "98765 43210"),  # IN, no trunk prefix
        ("手机 138 0013 8000", "138 0013 8000"),  # CN mobile
        ("ligue (11) 91234-5678", "(11) 91234-5678"),  # BR
        ("order confirmation: call (415) 555-2671", "(415) 555-2671"),  # "order" does not veto
    ],
)
def test_national_phone_formats_of_the_default_regions(
    engine: RuleEngine, text: str, value: str
) -> None:
    assert found(engine, text, "PHONE_NUMBER") == [value]


def test_phone_regions_are_configurable() -> None:
    us_only = RuleEngine.load(None, phone_regions=("US",))
    assert found(us_only, "mobile 98765 43210 pls", "PHONE_NUMBER") == []
    assert found(us_only, "call (415) 555-2671", "PHONE_NUMBER") == ["(415) 555-2671"]
    with pytest.raises(ValueError, match="unknown phone regions: XX"):
        RuleEngine.load(None, phone_regions=("XX",))


def test_bare_digit_runs_are_not_read_as_landlines(engine: RuleEngine) -> None:
    assert found(engine, "created_at: 1758406925", "PHONE_NUMBER") == []


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("SSN 219\u201309\u20139988 on file", "US_SSN", "219\u201309\u20139988"),
        ("SSN 219/09/9988 on file", "US_SSN", "219/09/9988"),
        ("ITIN 912\u201370\u20131234", "US_ITIN", "912\u201370\u20131234"),
        ("ITIN 912/70/1234", "US_ITIN", "912/70/1234"),
    ],
)
def test_ssn_and_itin_with_en_dashes_and_slashes(
    engine: RuleEngine, text: str, entity: str, value: str
) -> None:
    assert found(engine, text, entity) == [value]


@pytest.mark.parametrize(
    ("brand", "prefix", "length"),
    [
        ("UATP", "1", 15),
        ("RuPay", "6521", 16),
        ("RuPay 81", "81", 16),
        ("Maestro", "5612", 16),
        ("Maestro 6", "6390", 19),
        ("Verve", "5061", 18),
        ("Troy", "9792", 16),
    ],
)
def test_more_card_brands(engine: RuleEngine, brand: str, prefix: str, length: int) -> None:
    number = luhn_complete(prefix, length)
    assert found(engine, f"card {number} exp 09/27", "CREDIT_CARD") == [number], brand
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert found(engine, f"card {wrong} exp 09/27", "CREDIT_CARD") == [], brand
