"""A labelled secrets corpus, generated: provider formats in realistic surroundings,
placeholders that must never block, and hard negatives that must raise nothing.

Every value is generated from a seeded RNG by the format its provider documents
(prefix, alphabet, length); nothing is copied from another scanner's test data.
The surroundings are the places secrets leak from: prose, chat, code in several
languages, env files, YAML, JSON, shell history, HTTP dumps and logs. The
figures this corpus produces are on data we generated, and say so.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits
LOWER = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


@dataclass(frozen=True)
class SecretSample:
    provider: str  # "github", "password", ... or "negative" / "placeholder"
    kind: str  # "positive", "placeholder" or "negative"
    text: str
    value: str  # the secret (empty for negatives)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def r(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def uuid(self) -> str:
        return "-".join(self.r(HEX, n) for n in (8, 4, 4, 4, 12))


def _formats(g: _Gen) -> dict[str, Callable[[], str]]:
    """Provider -> a generator of one value in the provider's documented format."""
    return {
        "aws": lambda: "AKIA" + g.r(UPPER, 16),
        "github": lambda: "ghp_" + g.r(ALNUM, 36),
        "github_fine_grained": lambda: "github_pat_" + g.r(ALNUM, 22) + "_" + g.r(ALNUM, 59),
        "gitlab": lambda: "glpat-" + g.r(URLSAFE, 20),
        "slack_bot": lambda: (
            f"xoxb-{g.r(string.digits, 12)}-{g.r(string.digits, 13)}-" + g.r(ALNUM, 24)
        ),
        "slack_legacy_bot": lambda: f"xoxb-{g.r(string.digits, 11)}-{g.r(ALNUM, 24)}",
        "stripe": lambda: (
            g.rng.choice(["sk", "rk"])
            + "_"
            + g.rng.choice(["live", "test", "prod"])
            + "_"
            + g.r(ALNUM, 24)
        ),
        "openai": lambda: "sk-proj-" + g.r(URLSAFE, 100),
        "anthropic": lambda: "sk-ant-api03-" + g.r(URLSAFE, 93) + "AA",
        "huggingface": lambda: "hf_" + g.r(string.ascii_letters, 34),
        "google": lambda: "AIza" + g.r(URLSAFE, 35),
        "npm": lambda: "npm_" + g.r(ALNUM, 36),
        "pypi": lambda: "pypi-AgEIcHlwaS5vcmc" + g.r(URLSAFE, 70),
        "sendgrid": lambda: f"SG.{g.r(URLSAFE, 22)}.{g.r(URLSAFE, 43)}",
        "twilio": lambda: "SK" + g.r(HEX, 32),
        "shopify": lambda: "shpat_" + g.r(HEX, 32),
        "sonarqube": lambda: "squ_" + g.r(HEX, 40),
        "fly.io": lambda: "fo1_" + g.r(URLSAFE, 43),
        "hubspot": lambda: "pat-na1-" + g.uuid(),
        "intra42": lambda: "s-s4t2ud-" + g.r(HEX, 64),
        "aws_bedrock": lambda: "ABSK" + g.r(B64, 128),
        "facebook": lambda: "EAAG" + g.r(ALNUM, 180),
        "square": lambda: "sq0csp-" + g.r(URLSAFE, 43),
        "sourcegraph": lambda: "sgp_local_" + g.r(HEX, 40),
        "vault": lambda: "hvs." + g.r(ALNUM, 90),
        "jwt": lambda: _jwt(g),
        "private_key": lambda: (
            "-----BEGIN RSA PRIVATE KEY-----\n"
            + "\n".join(g.r(B64, 64) for _ in range(6))
            + "\n-----END RSA PRIVATE KEY-----"
        ),
        "generic_api_key": lambda: g.r(ALNUM, 32),
        "password": lambda: (
            g.rng.choice(["Winter", "Summer", "Blue", "Tiger"])
            + g.r(string.digits, 4)
            + g.rng.choice("!#$%&*@")
        ),
    }


def _jwt(g: _Gen) -> str:
    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg({'sub': g.r(string.digits, 9)})}." + g.r(
        URLSAFE, 43
    )


# Where a value appears: {v} is the value, {n} a variable name fit for it.
_SURROUNDINGS = [
    "here is my key {v}, can you check why the request fails?",
    "{n}={v}",
    'export {n}="{v}"',
    "{n}: {v}",
    '{{"{n}": "{v}"}}',
    "config = {{'{n}': '{v}'}}",
    'const {n} = "{v}";',
    "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/items",
    "2025-03-01T10:00:00Z INFO using credential {v} for upstream",
    "user: my {n} is {v}\nassistant: please rotate it",
]
_NAMES = {"password": "db_password", "generic_api_key": "apiKey"}


def _positives(g: _Gen, per_provider: int) -> list[SecretSample]:
    out = []
    for provider, make in _formats(g).items():
        for i in range(per_provider):
            value = make()
            template = _SURROUNDINGS[i % len(_SURROUNDINGS)]
            if provider in ("password", "generic_api_key") and "{n}" not in template:
                template = "{n} = '{v}'"
            if provider == "private_key" and "{n}" in template:
                template = "key file:\n{v}\n"
            name = _NAMES.get(provider, f"{provider.upper().replace('.', '_')}_TOKEN")
            out.append(SecretSample(provider, "positive", template.format(v=value, n=name), value))
    return out


def _placeholders() -> list[SecretSample]:
    values = [
        "ghp_" + "x" * 36,
        "AKIAXXXXXXXXXXXXXXXX",
        "AKIAIOSFODNN7EXAMPLE",
        "hf_" + "x" * 34,
        "sk_live_" + "0" * 24,
        "xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx",
        "sk-proj-" + "x" * 48,
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
        "glpat-xxxxxxxxxxxxxxxxxxxx",
        "npm_" + "X" * 36,
    ]
    return [
        SecretSample("placeholder", "placeholder", f"Set the key, e.g. {v} (see the docs)", v)
        for v in values
    ]


def _negatives(g: _Gen) -> list[SecretSample]:
    texts = [
        f"commit {g.r(HEX, 40)} fixes the build",
        f"sha256: {g.r(HEX, 64)}",
        f"request id {g.uuid()} took 120 ms",
        f"md5 {g.r(HEX, 32)} matches",
        "img src=data:image/png;base64," + base64.b64encode(bytes(range(256)) * 3).decode(),
        "max_tokens: 1024\ntemperature: 0.2",
        'tokenizer = "cl100k_base"',
        "password = getpass.getpass()",
        "PWD=/home/app/project",
        "the password is incorrect, please try again",
        "Set OPENAI_API_KEY in your environment before running.",
        "api_key = os.environ['OPENAI_API_KEY']",
        "password: ${DB_PASSWORD}",
        "token_count = 35",
        "Use the sk-ant- prefix for Anthropic keys and ghp_ for GitHub.",
        "secret_name: my_application_database_credentials",
        f"version 1.2.3 build {g.r(string.digits, 8)}",
        "The key insight is to pass the ball early.",
        f"cache key users:{g.r(LOWER, 12)}:profile",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        "-----END PUBLIC KEY-----",
    ]
    return [SecretSample("negative", "negative", t, "") for t in texts]


# Where generic credentials leak (the second set, added after the first was saturated):
# each template's {v} is the value, made by the generator named beside it.
_GENERIC_FORMS = [
    ("database:\n  password: {v}\n", "password"),
    ("<password>{v}</password>", "password"),
    ("login: admin / pass: {v}", "password"),
    ("mysql -u root -p{v} app", "password"),
    ("curl -u admin:{v} https://api.example.com", "password"),
    ("psql --password {v}", "password"),
    ("machine api.example.com login bob password {v}", "password"),
    ("Server=db;Database=app;User Id=sa;Password={v};", "password"),
    ("https://deploy:{v}@git.example.com/repo.git", "password"),
    ("my password is {v}", "password"),
    ("the api key is {v}", "key"),
    ("--client-secret {v}", "key"),
    ("MY_SERVICE_KEY={v}", "key"),
    ("licenseKey: {v}", "key"),
    ("X-Auth-Token: {v}", "key"),
    ('const oktaApiToken = "{v}";', "key"),
    ("GET /v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {v}\r\n", "key"),
    ("PRIVATE-TOKEN: {v}", "key"),
]


def _generic_forms(g: _Gen) -> list[SecretSample]:
    out = []
    for template, kind in _GENERIC_FORMS:
        for _ in range(3):
            if kind == "password":  # a chosen password: word, digits, symbol
                value = g.r(string.ascii_uppercase, 1) + g.r(string.ascii_lowercase, 5)
                value += g.r(string.digits, 3) + g.r("!#%*+-", 1)
            else:
                value = g.r(ALNUM, 32)
            out.append(SecretSample("generic_forms", "positive", template.format(v=value), value))
    return out


def _placeholder_texts() -> list[SecretSample]:
    """Templates and tutorial values in the places real credentials go."""
    texts = [
        "password: <your-password>",
        "DB_PASSWORD=your_password_here",
        "password: changeme",
        "Authorization: Bearer <token>",
        "Authorization: Bearer ${{ secrets.TOKEN }}",
        "token: {{ secrets.GITHUB_TOKEN }}",
        "password: process.env.DB_PASSWORD",
        "password: P@ssw0rd",
        "password: password123",
        "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
        "password: !vault |",
        "mongodb://<username>:<password>@cluster0.mongodb.net",
        "postgres://user:password@localhost:5432/db",
        "api_key: YOUR_API_KEY_HERE",
        "export OPENAI_API_KEY=sk-...",
    ]
    return [SecretSample("placeholder", "placeholder", t, t) for t in texts]


def _more_negatives(g: _Gen) -> list[SecretSample]:
    texts = [
        f"cache_key: {g.r(HEX, 40)}",
        f"idempotency_key={g.uuid()}",
        f"public_key: {g.r(ALNUM, 44)}",
        "object key: images/2024/photo12345.jpg",
        f"integrityKey: sha384-{g.r(ALNUM, 64)}",
        "the api key is stored in the vault, ask ops for it",
        'WWW-Authenticate: Bearer realm="example", error="invalid_token"',
        "send a bearer token with each request",
        "mysql -u root -p mydb",
        "curl -u $USER:$PASS https://x",
        'the password is "incorrect"',
        "token_version: 2.14.0-beta.3+build.12345",
        "Please reset your password using the link we sent you.",
        "if password == confirm_password:",
        "password VARCHAR(255) NOT NULL,",
        "prompt_tokens: 1234, completion_tokens: 567, total_tokens: 1801",
        f"image@sha256:{g.r(HEX, 64)}",
        "ssh://git@github.com/org/repo.git",
        "key: app.header.title.welcome_message",
        f"--commit-sha {g.r(HEX, 40)}",
    ]
    return [SecretSample("negative", "negative", t, "") for t in texts]


def build_secrets_corpus(seed: int = 16, per_provider: int = 10) -> list[SecretSample]:
    """Positives for every provider in every surrounding, placeholders, hard negatives;
    then the second set: generic forms, placeholder texts, more hard negatives."""
    g = _Gen(seed)
    first = _positives(g, per_provider) + _placeholders() + _negatives(g)
    return first + _generic_forms(g) + _placeholder_texts() + _more_negatives(g)
