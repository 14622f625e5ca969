"""Built-in secret detectors: at least sixty formats, each found on a synthetic sample."""

from __future__ import annotations

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Severity
from tests.dlp.samples import ALNUM, B64, HEX, SECRET_SAMPLES, jwt, rand, uuid


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(None, default_action=Action.REDACT)


@pytest.fixture(scope="module")
def secrets_only() -> RuleEngine:
    """The secret detectors alone: a PII finding overlapping a secret widens its span
    (redaction covers the union), so a rule's own span is seen without them."""
    return RuleEngine.load(None, default_action=Action.REDACT, enable_pii=False)


@pytest.fixture(scope="module")
def secret_rules(engine: RuleEngine) -> list[str]:
    return [rule.name for rule in engine.rules if rule.category == "secret"]


def test_at_least_sixty_secret_formats_ship(secret_rules: list[str]) -> None:
    assert len(secret_rules) >= 60
    assert len(set(secret_rules)) == len(secret_rules)


def test_every_secret_rule_has_a_sample_and_every_sample_a_rule(secret_rules: list[str]) -> None:
    assert sorted(SECRET_SAMPLES) == sorted(secret_rules)


@pytest.mark.parametrize("rule", sorted(SECRET_SAMPLES))
def test_each_format_is_found_exactly_where_it_is(
    engine: RuleEngine, secrets_only: RuleEngine, rule: str
) -> None:
    text, secret = SECRET_SAMPLES[rule]
    hits = [f for f in secrets_only.scan(text) if f.rule == rule]
    assert [text[f.start : f.end] for f in hits] == [secret]
    assert hits[0].category == "secret"
    # With every detector on, the secret's rule still speaks for (at least) the secret.
    (hit,) = [f for f in engine.scan(text) if f.rule == rule]
    assert secret in text[hit.start : hit.end]


def test_secrets_block_whatever_the_default_action(engine: RuleEngine) -> None:
    alert_engine = RuleEngine.load(None, default_action=Action.ALERT, enable_pii=False)
    text, _ = SECRET_SAMPLES["secret.github_pat"]
    for scanner in (engine, alert_engine):
        (finding,) = scanner.scan(text)
        assert (finding.action, finding.severity) == (Action.BLOCK, Severity.CRITICAL)
        assert (finding.entity, finding.label) == ("GITHUB_TOKEN", "GITHUB_TOKEN")


def test_documented_example_keys_are_low_alerts_not_blocks(engine: RuleEngine) -> None:
    text = (
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    found = [(f.rule, f.action, f.severity) for f in engine.scan(text)]
    assert found == [
        ("secret.aws_access_key_id", Action.ALERT, Severity.LOW),
        ("secret.aws_secret_access_key", Action.ALERT, Severity.LOW),
    ]
    real = "AKIA" + "Q3ZP7XK2M4NB8VR6"
    assert [(f.rule, f.action) for f in engine.scan(f"id {real}")] == [
        ("secret.aws_access_key_id", Action.BLOCK)
    ]


def test_keyword_gated_formats_need_their_keyword(engine: RuleEngine) -> None:
    value = rand(B64, 40)
    assert [f.rule for f in engine.scan(f"aws secret key: {value}")] == [
        "secret.aws_secret_access_key"
    ]
    assert engine.scan(f"some value {value}") == []
    hexkey = rand(HEX, 32)
    assert [f.rule for f in engine.scan(f"datadog api key {hexkey}")] == ["secret.datadog_api_key"]
    assert engine.scan(f"md5 {hexkey}") == []


def test_a_key_without_its_end_line_is_still_caught(engine: RuleEngine) -> None:
    text = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(rand(B64, 64) for _ in range(3))
    (finding,) = engine.scan(text)
    assert finding.rule == "secret.private_key_partial"
    assert (finding.start, finding.end) == (0, len(text))


def test_a_full_key_wins_over_its_partial_reading(engine: RuleEngine) -> None:
    text, key = SECRET_SAMPLES["secret.private_key"]
    assert [(f.rule, text[f.start : f.end]) for f in engine.scan(text)] == [
        ("secret.private_key", key)
    ]


def test_only_the_password_of_a_url_is_the_finding(secrets_only: RuleEngine) -> None:
    text = "DATABASE_URL=postgres://app:S3cr3t-P%40ss@db.internal:5432/app"
    (finding,) = secrets_only.scan(text)
    assert text[finding.start : finding.end] == "S3cr3t-P%40ss"
    assert (finding.rule, finding.label) == ("secret.postgres_url_password", "DB_PASSWORD")


@pytest.mark.parametrize(
    "text",
    [
        "postgres://user:${DB_PASSWORD}@localhost/app",
        "postgres://user:password@localhost/app",
        "redis://:<password>@cache:6379",
        "https://user:****@example.com",
        "password = os.environ['DB_PASSWORD']",
        "password: ${DB_PASSWORD}",
        "password=self.password",
        "api_key = settings.openai.api_key",
        'secret: "changeme"',
        "token: 500",
        "max_tokens: 1024",
        "the password is hunter2",
    ],
)
def test_placeholders_and_references_are_not_secrets(engine: RuleEngine, text: str) -> None:
    assert [f.rule for f in engine.scan(text) if f.category == "secret"] == []


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f2c1a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
        f"request id {uuid()}",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5 d41d8cd98f00b204e9800998ecf8427e",
        f"base64 blob {rand(B64, 120)}",
        "sk-ant-tutorial and sk-short",
        "ghp_tooShort123",
        "AKIA-not-a-key and AKIAlowercase12345678",
        "eyJhbGciOiJIUzI1NiJ9 alone, no signature",
        "The xoxb- prefix is for Slack bot tokens.",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZ\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUYWJj\n-----END CERTIFICATE-----",
    ],
)
def test_hard_negatives_raise_no_secret(engine: RuleEngine, text: str) -> None:
    assert [f.rule for f in engine.scan(text) if f.category == "secret"] == []


def test_a_jwt_in_an_authorization_header_is_one_finding(engine: RuleEngine) -> None:
    token = jwt()
    text = f"Authorization: Bearer {token}"
    (finding,) = engine.scan(text)
    assert text[finding.start : finding.end] == token
    assert finding.rule == "secret.jwt"  # validated JWT (1.0) beats the header heuristic (0.65)


def test_generic_assignments_need_randomness(engine: RuleEngine) -> None:
    strong = rand(ALNUM, 24)
    (finding,) = engine.scan(f'client_secret = "{strong}"')
    assert finding.rule == "secret.secret_assignment"
    assert engine.scan('client_secret = "aaaaaaaaaaaaaaaaaaaa"') == []


def test_disabling_secrets_removes_the_family() -> None:
    engine = RuleEngine.load(None, enable_secrets=False)
    assert engine.rules
    assert all(rule.category == "pii" for rule in engine.rules)
    text, _ = SECRET_SAMPLES["secret.github_pat"]
    assert engine.scan(text) == []


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("sk_live_" + rand(ALNUM, 12), "secret.stripe_secret_key"),
        ("rk_prod_" + rand(ALNUM, 24), "secret.stripe_restricted_key"),
        ("xoxr-" + rand(ALNUM, 40), "secret.slack_legacy_token"),
        ("slk_" + rand(HEX, 64), "secret.sourcegraph_cody_token"),
        (
            f"https://outlook.office.com/webhook/{uuid()}@{uuid()}/IncomingWebhook/"
            f"{rand(HEX, 32)}/{uuid()}",
            "secret.microsoft_teams_webhook",
        ),
    ],
)
def test_documented_variants_of_provider_formats(
    secrets_only: RuleEngine, text: str, rule: str
) -> None:
    assert rule in [f.rule for f in secrets_only.scan(text)]


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123456|shipped_to_the_customer_today",  # a bar, then words
        "twilio docs: the account page lists your keys",
        "xoxr-",
        "sk_live_",
    ],
)
def test_provider_variants_hard_negatives(secrets_only: RuleEngine, text: str) -> None:
    assert [f.rule for f in secrets_only.scan(text) if f.action is Action.BLOCK] == []
