"""Anonymisation operators on real findings: replace, token, mask, hash, synthetic."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence

import pytest

from llm_gateway.dlp.checksums import luhn_check_digit
from llm_gateway.dlp.findings import Action, Category, Finding, Severity
from llm_gateway.dlp.operators import Anonymizer, mask, parse_operator
from llm_gateway.dlp.synthetic import SyntheticValues
from llm_gateway.dlp.vault import Vault, VaultSession
from llm_gateway.state import MemoryStore
from llm_gateway.state.redis import RedisStore
from tests.state.cases import redis_store

KEY = b"k" * 32
VAULT_KEY = bytes(range(32))


def find(
    text: str,
    value: str,
    entity: str,
    label: str,
    *,
    action: Action = Action.REDACT,
    category: Category = "pii",
) -> Finding:
    start = text.index(value)
    return Finding(
        entity=entity,
        label=label,
        category=category,
        start=start,
        end=start + len(value),
        score=0.9,
        rule=label.lower(),
        action=action,
        severity=Severity.HIGH,
    )


def luhn_ok(number: str) -> bool:
    digits = "".join(ch for ch in number if ch.isdigit())
    return luhn_check_digit(digits[:-1]) == int(digits[-1])


TEXT = "Ada Lovelace (SSN 219-09-9999) paid with 4111-1111-1111-1111, mail ada@corp.com."


def findings(text: str = TEXT) -> list[Finding]:
    return [
        find(text, "Ada Lovelace", "PERSON", "PERSON"),
        find(text, "219-09-9999", "US_SSN", "SSN"),
        find(text, "4111-1111-1111-1111", "CREDIT_CARD", "CREDIT_CARD"),
        find(text, "ada@corp.com", "EMAIL_ADDRESS", "EMAIL", action=Action.ALERT),
    ]


# replace


async def test_replace_uses_the_specification_markers_and_leaves_other_actions() -> None:
    out = await Anonymizer(hmac_key=KEY).apply(TEXT, findings())
    assert out == (
        "<PERSON_REDACTED> (SSN <SSN_REDACTED>) paid with <CREDIT_CARD_REDACTED>, "
        "mail ada@corp.com."
    )


async def test_no_redact_findings_returns_the_text_itself() -> None:
    text = "nothing to see"
    assert await Anonymizer(hmac_key=KEY).apply(text, []) is text


async def test_overlapping_or_unsorted_findings_never_leak() -> None:
    text = "key sk-abcdef0123456789 end"
    a = find(text, "sk-abcdef", "API_KEY", "API_KEY")
    b = find(text, "abcdef0123456789", "SECRET", "SECRET")
    for given in ([a, b], [b, a]):
        out = await Anonymizer(hmac_key=KEY).apply(text, given)
        assert out == "key <API_KEY_REDACTED> end"


async def test_labels_are_sanitised_into_the_marker_shape() -> None:
    text = "ip 10.1.2.3"
    out = await Anonymizer(hmac_key=KEY).apply(
        text, [find(text, "10.1.2.3", "INTERNAL_IP", "internal-ip", category="custom")]
    )
    assert out == "ip <INTERNAL_IP_REDACTED>"


# token


async def test_tokens_are_numbered_per_label_and_stable_within_a_conversation() -> None:
    anonymizer = Anonymizer("token", hmac_key=KEY)
    vault = Vault(MemoryStore(), VAULT_KEY)
    text = "Ada met Bob; Ada's SSN 219-09-9999."
    given = [
        find(text, "Ada", "PERSON", "PERSON"),
        find(text, "Bob", "PERSON", "PERSON"),
        Finding("PERSON", "PERSON", "pii", 13, 16, 0.9, "ner", Action.REDACT, Severity.LOW),
        find(text, "219-09-9999", "US_SSN", "SSN"),
    ]
    session = vault.session("t:u:c1")
    out = await anonymizer.apply(text, given, session)
    assert out == "<PERSON_1> met <PERSON_2>; <PERSON_1>'s SSN <SSN_1>."
    # A later request of the same conversation, through a new session object.
    later = "Bob and Cy"
    out = await anonymizer.apply(
        later,
        [find(later, "Bob", "PERSON", "PERSON"), find(later, "Cy", "PERSON", "PERSON")],
        vault.session("t:u:c1"),
    )
    assert out == "<PERSON_2> and <PERSON_3>"
    assert await session.mapping() == {
        "<PERSON_1>": "Ada",
        "<PERSON_2>": "Bob",
        "<PERSON_3>": "Cy",
        "<SSN_1>": "219-09-9999",
    }
    # Another conversation numbers on its own.
    other = await anonymizer.apply(
        "Bob", [find("Bob", "Bob", "PERSON", "PERSON")], vault.session("t:u:c2")
    )
    assert other == "<PERSON_1>"


class CountingSession(VaultSession):
    """Counts the vault round trips of an in-process session."""

    def __init__(self, inner: VaultSession) -> None:
        super().__init__(inner.conversation)
        self.inner = inner
        self.calls = 0

    async def tokens_for(self, items: Sequence[tuple[str, str]]) -> list[str]:
        self.calls += 1
        return await self.inner.tokens_for(items)

    async def mapping(self) -> dict[str, str]:
        return await self.inner.mapping()

    async def values(self, tokens: Iterable[str]) -> dict[str, str]:
        return await self.inner.values(tokens)


async def test_every_text_of_a_request_is_tokenised_in_one_round_trip() -> None:
    session = CountingSession(Vault(MemoryStore(), VAULT_KEY).session("c1"))
    system, user, tool = "You help Ada.", "Bob wrote to Ada.", '{"to": "Bob", "ssn": "219-09-9999"}'
    out = await Anonymizer("token", hmac_key=KEY).apply_many(
        [
            (system, [find(system, "Ada", "PERSON", "PERSON")]),
            (user, [find(user, "Bob", "PERSON", "PERSON"), find(user, "Ada", "PERSON", "PERSON")]),
            ("no findings", []),
            (
                tool,
                [find(tool, "Bob", "PERSON", "PERSON"), find(tool, "219-09-9999", "US_SSN", "SSN")],
            ),
        ],
        session,
    )
    assert out == [
        "You help <PERSON_1>.",
        "<PERSON_2> wrote to <PERSON_1>.",
        "no findings",
        '{"to": "<PERSON_2>", "ssn": "<SSN_1>"}',
    ]
    assert session.calls == 1


@pytest.mark.redis
async def test_tokens_agree_across_replicas_through_redis(redis_server_url: str) -> None:
    anonymizer = Anonymizer("token", hmac_key=KEY)
    async with redis_store(redis_server_url) as shared:
        await _agree_across_replicas(anonymizer, redis_server_url, shared.prefix)


async def _agree_across_replicas(anonymizer: Anonymizer, url: str, prefix: str) -> None:
    """Two replicas, each with a pool of its own, on one Redis."""
    first = Vault(RedisStore.from_url(url, prefix=prefix), VAULT_KEY, owns_store=True)
    second = Vault(RedisStore.from_url(url, prefix=prefix), VAULT_KEY, owns_store=True)
    try:
        text = "Ada and Bob"
        given = [find(text, "Ada", "PERSON", "PERSON"), find(text, "Bob", "PERSON", "PERSON")]
        assert await anonymizer.apply(text, given, first.session("c1")) == (
            "<PERSON_1> and <PERSON_2>"
        )
        later = "Bob, then Ada"
        given = [find(later, "Bob", "PERSON", "PERSON"), find(later, "Ada", "PERSON", "PERSON")]
        assert await anonymizer.apply(later, given, second.session("c1")) == (
            "<PERSON_2>, then <PERSON_1>"
        )
    finally:
        await first.aclose()
        await second.aclose()


async def test_token_without_a_session_or_with_a_failing_vault_still_redacts() -> None:
    anonymizer = Anonymizer("token", hmac_key=KEY)
    text = "SSN 219-09-9999 and 078-05-1120"
    given = [find(text, "219-09-9999", "US_SSN", "SSN"), find(text, "078-05-1120", "US_SSN", "SSN")]
    assert await anonymizer.apply(text, given) == "SSN <SSN_REDACTED> and <SSN_REDACTED>"
    full = Vault(MemoryStore(), VAULT_KEY, max_tokens_per_conversation=1).session("c1")
    out = await anonymizer.apply(text, given, full)
    assert out == "SSN <SSN_REDACTED> and <SSN_REDACTED>"
    down = Vault(RedisStore.from_url("redis://127.0.0.1:1/0"), VAULT_KEY, owns_store=True)
    try:
        out = await anonymizer.apply(text, given, down.session("c1"))
    finally:
        await down.aclose()
    assert out == "SSN <SSN_REDACTED> and <SSN_REDACTED>"


# mask


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("4111-1111-1111-1111", "****-****-****-1111"),
        ("4111 1111 1111 1111", "**** **** **** 1111"),
        ("4111111111111111", "************1111"),
        ("219-09-9999", "***-**-9999"),
        ("Bob", "**b"),  # never more than half shown
        ("1234", "**34"),
    ],
)
def test_mask_keeps_the_last_characters_and_the_separators(value: str, masked: str) -> None:
    assert mask(value) == masked


async def test_mask_operator_with_its_options() -> None:
    text = "card 4111-1111-1111-1111"
    anonymizer = Anonymizer("mask", hmac_key=KEY, mask_keep=2, mask_char="#")
    out = await anonymizer.apply(text, [find(text, "4111-1111-1111-1111", "CREDIT_CARD", "CC")])
    assert out == "card ####-####-####-##11"


# hash


async def test_hash_is_keyed_stable_and_documented_in_shape() -> None:
    text = "SSN 219-09-9999 again 219-09-9999"
    ssn = find(text, "219-09-9999", "US_SSN", "SSN")
    again = dataclasses.replace(ssn, start=22, end=33)
    out = await Anonymizer("hash", hmac_key=KEY).apply(text, [ssn, again])
    match = re.fullmatch(r"SSN (<SSN_HASH_([0-9a-f]{12})>) again \1", out)
    assert match is not None
    assert match.group(2) not in hashlib.sha256(b"219-09-9999").hexdigest()  # not a bare hash
    other = await Anonymizer("hash", hmac_key=b"o" * 32).apply(text, [ssn, again])
    assert other != out
    longer = await Anonymizer("hash", hmac_key=KEY, hash_length=20).apply(text, [ssn])
    assert re.fullmatch(r"SSN <SSN_HASH_[0-9a-f]{20}> again 219-09-9999", longer)


# synthetic


async def test_synthetic_card_passes_luhn_and_keeps_length_and_separators() -> None:
    anonymizer = Anonymizer("synthetic", hmac_key=KEY)
    for card in (
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "378282246310005",
        "4242424242424242",
    ):
        text = f"pay {card} now"
        out = await anonymizer.apply(text, [find(text, card, "CREDIT_CARD", "CREDIT_CARD")])
        fake = out.removeprefix("pay ").removesuffix(" now")
        assert fake != card
        assert len(fake) == len(card)
        assert [i for i, c in enumerate(fake) if not c.isdigit()] == [
            i for i, c in enumerate(card) if not c.isdigit()
        ]
        assert luhn_ok(fake)
        assert fake[0] == card[0]


def test_synthetic_values_are_stable_per_key_and_differ_across_keys() -> None:
    one, same, other = SyntheticValues(KEY), SyntheticValues(KEY), SyntheticValues(b"x" * 32)
    for entity, value in [
        ("CREDIT_CARD", "4111-1111-1111-1111"),
        ("PERSON", "Ada Lovelace"),
        ("EMAIL_ADDRESS", "ada@corp.com"),
    ]:
        assert one.fake(entity, entity, value) == same.fake(entity, entity, value)
        assert one.fake(entity, entity, value) != other.fake(entity, entity, value)


def test_synthetic_ssns_follow_the_issuing_rules_and_keep_their_separators() -> None:
    values = SyntheticValues(KEY)
    for n in range(500):
        original = f"{100 + n:03d}-{n % 90 + 10:02d}-{1000 + n:04d}"
        fake = values.fake("US_SSN", "SSN", original)
        assert fake is not None
        match = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", fake)
        assert match is not None, fake
        area, group, serial = match.groups()
        assert area not in {"000", "666"}
        assert not area.startswith("9")
        assert group != "00"
        assert serial != "0000"
    assert re.fullmatch(r"\d{9}", values.fake("US_SSN", "SSN", "219099999") or "")


def test_synthetic_emails_phones_ips_names_and_places_look_real() -> None:
    values = SyntheticValues(KEY)
    email = values.fake("EMAIL_ADDRESS", "EMAIL", "ada@corp.com") or ""
    assert re.fullmatch(r"[\w.+-]+@example\.(com|org|net)", email)
    phone = values.fake("PHONE_NUMBER", "PHONE", "+1 (415) 555-0132") or ""
    assert re.fullmatch(r"\+1 \([2-9]\d\d\) \d{3}-\d{4}", phone), phone
    private = values.fake("IP_ADDRESS", "IP", "10.1.2.3") or ""
    assert ipaddress.ip_address(private).is_private
    public = values.fake("IP_ADDRESS", "IP", "8.8.8.8") or ""
    assert ipaddress.ip_address(public).version == 4
    assert ipaddress.ip_address(values.fake("IP_ADDRESS", "IP", "2001:db8::1") or "").version == 6
    name = values.fake("PERSON", "PERSON", "Ada Lovelace") or ""
    assert re.fullmatch(r"[A-Z][\w.'-]+( [A-Z][\w.'-]+)+", name), name
    city = values.fake("LOCATION", "LOCATION", "London") or ""
    assert city
    assert city != "London"
    assert values.fake("NRP", "NRP", "Brazilian") is None


def test_synthetic_iban_mac_and_secrets_keep_their_shape() -> None:
    values = SyntheticValues(KEY)
    iban = values.fake("IBAN_CODE", "IBAN", "DE89 3704 0044 0532 0130 00") or ""
    assert re.fullmatch(r"DE\d\d( \d{4}){4} \d\d", iban), iban
    compact = iban.replace(" ", "")
    assert int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1
    mac = values.fake("MAC_ADDRESS", "MAC", "00:1A:2B:3C:4D:5E") or ""
    assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", mac)
    secret = values.fake("GITHUB_TOKEN", "GITHUB_TOKEN", "ghp_" + "aB3" * 12) or ""
    assert secret.startswith("ghp_")
    assert secret != "ghp_" + "aB3" * 12
    assert re.fullmatch(r"ghp_([a-z][A-Z]\d){12}", secret)


async def test_synthetic_nrp_falls_back_to_the_marker() -> None:
    text = "the Brazilian delegation"
    out = await Anonymizer("synthetic", hmac_key=KEY).apply(
        text, [find(text, "Brazilian", "NRP", "NRP")]
    )
    assert out == "the <NRP_REDACTED> delegation"


def test_faker_is_imported_only_when_the_synthetic_operator_runs() -> None:
    script = (
        "import sys\n"
        "from llm_gateway.dlp.operators import Anonymizer\n"
        "from llm_gateway.dlp.synthetic import SyntheticValues\n"
        "Anonymizer('synthetic', hmac_key=b'k' * 32)\n"
        "assert 'faker' not in sys.modules, 'imported too early'\n"
        "SyntheticValues(b'k' * 32).fake('PERSON', 'PERSON', 'Ada')\n"
        "assert 'faker' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


# configuration


async def test_overrides_by_rule_label_or_entity_in_that_order() -> None:
    overrides = {"credit_card": "mask", "CREDIT_CARD": "hash", "US_SSN": "hash", "SSN": "mask"}
    anonymizer = Anonymizer("replace", hmac_key=KEY, overrides=overrides)
    out = await anonymizer.apply(TEXT, findings())  # the helper names rules label.lower()
    assert out == (
        "<PERSON_REDACTED> (SSN ***-**-9999) paid with ****-****-****-1111, mail ada@corp.com."
    )
    assert not anonymizer.uses_vault
    assert Anonymizer("mask", hmac_key=KEY, overrides={"PERSON": "token"}).uses_vault


def test_bad_configuration_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="unknown operator 'scramble'; expected one of replace"):
        parse_operator("scramble")
    with pytest.raises(ValueError, match="override for PERSON"):
        Anonymizer(hmac_key=KEY, overrides={"PERSON": "nope"})
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Anonymizer(hmac_key=b"short")
    with pytest.raises(ValueError, match="single character"):
        Anonymizer("mask", hmac_key=KEY, mask_char="**")
    assert parse_operator(" Token ") == "token"
