"""Validators and checksums: each accepts what the format allows and nothing it forbids."""

from __future__ import annotations

import pytest

from llm_gateway.dlp import validators
from llm_gateway.dlp.checksums import (
    bitcoin_base58_valid,
    bitcoin_bech32_valid,
    eip55_valid,
    iban_valid,
    keccak256,
    luhn_valid,
)
from tests.dlp.samples import eip55, iban, jwt, luhn_complete


def accepts(name: str, value: str) -> bool:
    return validators.resolve(name)(value) == len(value)


def test_keccak256_matches_the_published_vectors() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )
    assert len(keccak256(b"x" * 500)) == 32  # several blocks


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("")
    assert not luhn_valid("12a4")
    assert accepts("luhn", "4111-1111-1111-1111")


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "2221 0000 0000 0009",
        "3782 822463 10005",
        "6011 1111 1111 1117",
        "3530 1113 3330 0000",
        luhn_complete("36", 14),
        luhn_complete("62", 16),
        luhn_complete("4", 19),
    ],
)
def test_credit_card_accepts_valid_numbers(number: str) -> None:
    assert accepts("credit_card", number)


def test_credit_card_drops_a_trailing_group_that_is_not_part_of_the_number() -> None:
    check = validators.resolve("credit_card")
    assert check("4111 1111 1111 1111 123") == len("4111 1111 1111 1111")
    assert check("4111111111111111 203") == len("4111111111111111")
    assert check("4111 1111 1111 1112 123") == 0


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3452",  # Luhn passes, no brand starts with 1
        "0000 0000 0000 0000",  # one digit repeated
        "4111-1111 1111.1111",  # mixed separators
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # single digits: only the evasion view joins them
        "3782 822463 1000",  # Amex is 15 digits
        "4" * 40,
    ],
)
def test_credit_card_rejects_near_misses(number: str) -> None:
    assert not accepts("credit_card", number)


def test_ssn_follows_the_ssa_rules() -> None:
    assert accepts("ssn", "219-09-9988")
    assert accepts("ssn", "536 22 1234")
    for invalid in ("000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456"):
        assert not accepts("ssn", invalid), invalid  # areas never issued
    assert not accepts("ssn", "219-00-1234")  # group 00
    assert not accepts("ssn", "219-09-0000")  # serial 0000


@pytest.mark.parametrize("example", ["123-45-6789", "078-05-1120", "219-09-9999", "457-55-5462"])
def test_ssn_rejects_published_examples(example: str) -> None:
    assert not accepts("ssn", example)


def test_ssn_rejects_one_repeated_digit_and_wrong_lengths() -> None:
    assert not accepts("ssn", "111-11-1111")
    assert not accepts("ssn", "12345678")
    assert not accepts("ssn", "1234567890")


def test_itin_group_ranges() -> None:
    assert accepts("itin", "912-70-1234")
    assert accepts("itin", "900-50-0000")
    assert accepts("itin", "999-94-1234")
    for invalid in ("912-49-1234", "912-66-1234", "912-89-1234", "912-93-1234", "812-70-1234"):
        assert not accepts("itin", invalid), invalid


def test_iban_mod97_and_country_length() -> None:
    assert iban_valid("DE89370400440532013000")
    assert iban_valid("GB82WEST12345698765432")
    assert accepts("iban", "DE89 3704 0044 0532 0130 00")
    assert accepts("iban", iban("FR", "20041010050500013M02606"))
    assert not iban_valid("DE89370400440532013001")  # checksum
    assert not iban_valid("DE8937040044053201300")  # Germany is 22 characters
    assert not iban_valid("ZZ89370400440532013000")  # no such country
    assert not accepts("iban", "X" * 60)


def test_phone_numbers_by_how_they_are_written() -> None:
    for number in (
        "+1 415-555-2671",
        "(415) 555-2671",
        "415.555.2671",
        "1-415-555-2671",
        "+44 20 7946 0958",
        "020 7946 0958",
        "+49 30 12345678",
        "001-415-555-2671",
        "+1-415-555-2671x890",
    ):
        assert accepts("phone", number), number


def test_phone_rejects_dates_addresses_and_bare_short_numbers() -> None:
    for value in (
        "2024-01-15",
        "15.01.2024",
        "10.0.0.1",
        "123-45-6789",
        "123456789",  # nine bare digits: no region reads them without a prefix
        "12345",
        "1758406925",  # a Unix timestamp: no North American area code starts with 1
    ):
        assert validators.resolve("phone")(value) == 0, value


def test_phone_drops_a_short_trailing_group_and_keeps_long_ones() -> None:
    check = validators.resolve("phone")
    assert check("415-555-2671 42") == len("415-555-2671")
    assert check("3052 776922 0595") == 0  # a failed card, not a phone without its end


def test_ip_addresses() -> None:
    assert accepts("ipv4", "192.168.1.20")
    assert not accepts("ipv4", "256.1.1.1")
    assert accepts("ipv6", "2001:db8::1")
    assert accepts("ipv6", "fe80::1")
    assert accepts("ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334")
    assert accepts("ipv6", "::ffff:192.168.1.1")
    for value in ("::1", "::", "a::b", "10:30:00", "1:2"):
        assert not accepts("ipv6", value), value


def test_mac_addresses() -> None:
    assert accepts("mac", "00:1B:63:84:45:E6")
    assert accepts("mac", "001b.6384.45e6")
    assert not accepts("mac", "00:00:00:00:00:00")
    assert not accepts("mac", "FF-FF-FF-FF-FF-FF")


def test_email_limits() -> None:
    assert accepts("email", "jane.roe+news@mail.example.co.uk")
    assert not accepts("email", "a" * 65 + "@example.com")
    assert not accepts("email", ".jane@example.com")
    assert not accepts("email", "ja..ne@example.com")
    assert not accepts("email", "logo@2x.png")


def test_bitcoin_addresses() -> None:
    assert bitcoin_base58_valid("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
    assert bitcoin_base58_valid("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy")
    assert not bitcoin_base58_valid("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
    assert not bitcoin_base58_valid("1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a")  # 0 is not base58
    assert bitcoin_bech32_valid("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
    assert bitcoin_bech32_valid("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
    assert bitcoin_bech32_valid("bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297")
    assert not bitcoin_bech32_valid("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5")
    assert not bitcoin_bech32_valid("bc1Qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")  # mixed case
    assert not bitcoin_bech32_valid("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx")  # testnet
    assert accepts("bitcoin", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")


def test_ethereum_checksum() -> None:
    assert eip55_valid("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
    assert eip55_valid("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359")
    assert not eip55_valid("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")  # one case flipped
    assert not eip55_valid("0x" + "ab" * 20)  # one case carries no checksum
    checksummed = eip55("fb6916095ca1df60bb79ce92ce3ea74c37c5d359")
    assert checksummed == "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
    assert accepts("eip55", checksummed)


def test_date_of_birth() -> None:
    for value in ("03/15/1985", "15.03.1985", "1985-03-15", "12 March 1985", "March 12th, 1985"):
        assert accepts("date_of_birth", value), value
    for value in ("02/30/1985", "1985-13-01", "12 March 2999", "01/01/1850", "5 mayonnaise 1990"):
        assert not accepts("date_of_birth", value), value


def test_jwt_header_must_name_an_algorithm() -> None:
    assert accepts("jwt", jwt())
    assert not accepts("jwt", "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln")
    assert not accepts("jwt", "eyJ!!!.eyJ.x")


def test_entropy() -> None:
    assert validators.shannon_entropy("aaaa") == 0.0
    assert validators.shannon_entropy("abcd") == 2.0
    assert validators.shannon_entropy("") == 0.0
    assert accepts("entropy>=3.5", "k8Qz1LmN0pRt5VwX")
    assert not accepts("entropy >= 3.5", "passwordpassword")
    long_value = "ab" * 10_000  # measured on a bounded sample, still right
    assert validators.shannon_entropy(long_value) == 1.0


@pytest.mark.parametrize(
    "value",
    [
        "${DB_PASSWORD}",
        "<password>",
        "{{token}}",
        "%s",
        "********",
        "xxxxxxxx",
        "changeme",
        "PASSWORD",
        "self.password",
        "settings.db.password",
        "DB_PASSWORD",
        "AKIAIOSFODNN7EXAMPLE",
        "aaaaaaaa",
        "...",
    ],
)
def test_not_placeholder_rejects_what_stands_for_a_secret(value: str) -> None:
    assert not accepts("not_placeholder", value)


def test_not_placeholder_accepts_real_looking_values() -> None:
    for value in ("Tr0ub4dor&3", "hunter22", "s3cr3t-Pa55", "k8Qz1LmN0pRt5VwX"):
        assert accepts("not_placeholder", value), value


def test_mixed() -> None:
    assert accepts("mixed", "abc123")
    assert not accepts("mixed", "abcdef")
    assert not accepts("mixed", "123456")


def test_unknown_names_raise_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown validator 'lunh'.*luhn.*entropy>=X"):
        validators.resolve("lunh")
    with pytest.raises(ValueError, match="above 8 bits"):
        validators.resolve("entropy>=8.5")


def test_every_validator_bounds_its_work_on_huge_values() -> None:
    huge = "1" * 1_000_000
    for name in validators.VALIDATORS:
        assert validators.resolve(name)(huge) == 0, name
