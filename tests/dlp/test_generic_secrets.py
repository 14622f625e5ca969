"""Generic credential detectors: assignments, headers, URLs, prose, entropy by charset,
and context words found inside identifiers."""

from __future__ import annotations

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Severity
from llm_gateway.dlp.validators import ENTROPY_FLOORS, charset, high_entropy, password_like
from tests.dlp.samples import ALNUM, HEX, URLSAFE, rand, uuid


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(None, enable_pii=False)


def secrets(engine: RuleEngine, text: str) -> list[str]:
    return [text[f.start : f.end] for f in engine.scan(text) if f.action is Action.BLOCK]


KEY = rand(ALNUM, 32)
HEXKEY = rand(HEX, 40)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"curl -H 'Authorization: Bearer {KEY}' https://api.example.com", KEY),
        (f'curl -H "Authorization: SSWS {KEY}" https://x.okta.com', KEY),
        (f"authorization: {KEY}", KEY),
        (f"curl -H 'Api-Token: {KEY}' https://api.example.com", KEY),
        (f"X-API-Key: {HEXKEY}", HEXKEY),
        ("ldap://admin:S3cr3t!pw@ldap.internal/dc=x", "S3cr3t!pw"),
        ("jdbc:mysql://db:3306/app?user=app&password=Zq8!rT2#mW", "Zq8!rT2#mW"),
        ("Server=db;Database=app;User Id=sa;Password=Pq7$wE2!zX;", "Pq7$wE2!zX"),
        ("my password is Winter2024!", "Winter2024!"),
        ("The password for the VPN is: Blue-Horse-42", "Blue-Horse-42"),
        ("pwd: p@$$w0rd(2024)", "p@$$w0rd(2024)"),
        ('passphrase: "correct horse battery staple"', "correct horse battery staple"),
        (f'userPassword = "{rand(ALNUM, 14)}"', None),
        (f"OKTA_API_TOKEN='{KEY}'", KEY),
        (f'const oktaApiToken = "{KEY}";', KEY),
        (f"signing-key: {rand(URLSAFE, 43)}", None),
        (f'"client_secret": "{HEXKEY}"', HEXKEY),
        (f"export GITHUB_WEBHOOK_SECRET={KEY}", KEY),
    ],
)
def test_generic_credentials_are_found(engine: RuleEngine, text: str, value: str | None) -> None:
    found = secrets(engine, text)
    assert len(found) == 1, found
    if value is not None:
        assert found == [value]


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 1024",
        'tokenizer = "cl100k_base"',
        "password = getpass.getpass()",
        "password: str = Field(min_length=8)",
        "PWD=/home/app/project",
        "the password is hunter2",
        "the password is incorrect, try again",
        "password_reset_url: https://example.com/reset",
        "token_count = 35",
        "if password == stored_hash:",
        "api_key = os.environ['OPENAI_API_KEY']",
        "secret_name: my_application_database_credentials",
        "Enter your password: ",
        "passwordless login is enabled",
        "key points: pass the ball, keep it simple",
        "DB_PASSWORD=your_password_here",
        "password: process.env.DB_PASSWORD",
        "password: !vault |",
        "token_version: 2.14.0-beta.3+build.12345",
        "password: password123",
        "password: P@ssw0rd",
        "password: hunter2",
        "ADMIN_PASSWORD=changeit",
    ],
)
def test_generic_hard_negatives(engine: RuleEngine, text: str) -> None:
    assert secrets(engine, text) == []


def test_keyword_context_is_found_inside_identifiers(engine: RuleEngine) -> None:
    token = "00" + rand(ALNUM, 40)
    for name in ("oktaApiToken", "OKTA_API_TOKEN", "okta-api-token"):
        text = f"{name} = {token}"
        assert "secret.okta_api_token" in [f.rule for f in engine.scan(text)], name


@pytest.mark.parametrize(
    ("value", "kind"),
    [(rand(HEX, 32), "hex"), (rand(ALNUM, 32), "alphanumeric"), (rand(URLSAFE, 32), "base64")],
)
def test_entropy_floor_per_charset(value: str, kind: str) -> None:
    assert charset(value) == kind or (kind == "base64" and charset(value) == "alphanumeric")
    assert high_entropy(value)
    assert not high_entropy("a1" * 16)  # the alphabet's floor is not reached
    assert ENTROPY_FLOORS["hex"] < ENTROPY_FLOORS["alphanumeric"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Winter2024!", True), ("hunter2", False), ("incorrect", False), ("P4ssw0rd", True)],
)
def test_what_counts_as_a_password_in_prose(value: str, expected: bool) -> None:
    assert password_like(value) is expected


@pytest.mark.parametrize("value", ["password123", "P@ssw0rd", "hunter2", "Passw0rd"])
def test_tutorial_passwords_are_low_alerts(engine: RuleEngine, value: str) -> None:
    """A password every tutorial shows is reported, never blocked."""
    text = f"password: {value}"
    found = [(f.action, f.severity, text[f.start : f.end]) for f in engine.scan(text)]
    assert found == [(Action.ALERT, Severity.LOW, value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("database:\n  password: Tr0ub4dor&3x\n", "Tr0ub4dor&3x"),
        ("<db:password>Tr0ub4dor3x</db:password>", "Tr0ub4dor3x"),
        ("login: admin / pass: S3cure!Pa55", "S3cure!Pa55"),
        ("mysql -u root -pQz8vLm2Kp4x db", "Qz8vLm2Kp4x"),
        ("curl -u admin:Sup3rS3cret! https://x", "Sup3rS3cret!"),
        ("psql --password Qz8vLm2Kp4x", "Qz8vLm2Kp4x"),
        ("machine api.example.com login bob password Sup3rS3cret!", "Sup3rS3cret!"),
        ('the wifi password is "purple monkey dishwasher"', "purple monkey dishwasher"),
        (f"the api key is {KEY}", KEY),
        (f"--client-secret {KEY}", KEY),
        (f"use bearer {KEY}", KEY),
        (f"MY_SERVICE_KEY={KEY}", KEY),
        (f"licenseKey: {KEY}", KEY),
        (f"key: {KEY}", KEY),
        ("sshpass -p Kq7mW2pZx9! ssh host", "Kq7mW2pZx9!"),
        ("docker login -u bob -p Kq7mW2pZx9! registry", "Kq7mW2pZx9!"),
        ("redis-cli -a Kq7mW2pZx9! ping", "Kq7mW2pZx9!"),
        ("htpasswd -b file bob Kq7mW2pZx9", "Kq7mW2pZx9"),
        (f"Cookie: sessionid={KEY}", KEY),
        ("credentials: bob / Kq7mW2pZx9!", "Kq7mW2pZx9!"),
        ("https://deploy:Mxqqfo385#@git.example.com/repo.git", "Mxqqfo385#"),
    ],
)
def test_more_generic_credentials(engine: RuleEngine, text: str, value: str) -> None:
    assert secrets(engine, text) == [value]


@pytest.mark.parametrize(
    "text",
    [
        f"cache_key: {HEXKEY}",
        f"idempotency_key={uuid()}",
        f"primary key: {rand(ALNUM, 24)}",
        f"public_key: {rand(ALNUM, 44)}",
        f"pubKey: {rand(ALNUM, 44)}",
        "object key: images/2024/photo12345.jpg",
        "sortKey: 2024-01-01T00:00:00Z#user123",
        f"integrityKey: sha384-{rand(ALNUM, 64)}",
        "the api key is stored in the vault, ask ops for it",
        "--token-file /var/run/secrets/token",
        'WWW-Authenticate: Bearer realm="example", error="invalid_token"',
        "send a bearer token with each request",
        "mysql -u root -p mydb",
        "curl -u $USER:$PASS https://x",
        'the password is "incorrect"',
        'the password is "your password here"',
        "<password>${DB_PASSWORD}</password>",
        "machine example.com login user password <password>",
        "key={item.id}",
        "key: app.header.title.welcome_message",
        f"--commit-sha {HEXKEY}",
        "monkey: " + rand(ALNUM, 30),
        "Set-Cookie: theme=dark; Path=/",
        "Cookie: _ga=GA1.2.1234567890.1234567890; sessionid=abc",
        "docker login -u bob --password-stdin",
        "redis-cli -a $REDIS_PASSWORD ping",
        "htpasswd -c file bob",
        "login: bob / see the wiki",
        "credentials: stored in vault/prod",
        "https://example.com/docs#section:intro@top",
        "password_regex: ^(?=.*[A-Z])(?=.*\\d).{8,}$",
        "password_pattern: ^[A-Za-z0-9]{12,64}$",
    ],
)
def test_more_generic_hard_negatives(engine: RuleEngine, text: str) -> None:
    assert secrets(engine, text) == []
