"""The ``llm-gateway`` command.

Each test gets its own CONFIG_DIR and DATA_DIR (and working directory, so no
``.env`` is picked up), and an environment without any of the gateway's settings.
The commands run in-process (``tests/harness.py``: ``cli.main(argv)`` with that
environment, working directory and captured output); the tests at the end run
the installed ``llm-gateway`` entry point and ``python -m llm_gateway.cli`` as
real subprocesses.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest

from llm_gateway.settings import settings_variables
from tests.harness import run_cli

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config"
SHIPPED_MODELS = ("claude-sonnet", "gpt-4", "ollama-local")


@dataclass
class Cli:
    tmp: Path
    env: dict[str, str]

    @property
    def config_dir(self) -> Path:
        return Path(self.env["CONFIG_DIR"])

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``llm-gateway ARGS`` in-process, with ``env`` added to the environment."""
        return run_cli(args, {**self.env, **env}, self.tmp)

    def process(
        self, command: list[str], *args: str, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``COMMAND ARGS`` as a real subprocess (the entry point, ``python -m``)."""
        return subprocess.run(
            [*command, *args],
            env={**self.env, **env},
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI with the shipped configuration and policy copied into temporary directories."""
    config = tmp_path / "config"
    config.mkdir()
    for source in REPO_CONFIG.glob("*.yaml"):
        shutil.copy(source, config / source.name)
    shutil.copytree(REPO_CONFIG.parent / "policies", tmp_path / "policies")
    gateway_vars = set(settings_variables()) | {"LOCAL_MODEL_NAME"}
    env = {k: v for k, v in os.environ.items() if k not in gateway_vars}
    env.update(
        CONFIG_DIR=str(config),
        DATA_DIR=str(tmp_path / "data"),
        POLICY_DIR=str(tmp_path / "policies"),
    )
    return Cli(tmp_path, env)


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout


# --- check-config ----------------------------------------------------------------


def test_check_config_on_the_shipped_config(cli: Cli) -> None:
    done = cli("check-config")
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    lines = done.stdout.splitlines()
    assert f"ok: {cli.config_dir / 'routing_policies.yaml'}" in lines
    assert f"ok: {cli.config_dir / 'pricing.yaml'}" in lines
    models = {
        m.group(1): m.group(2) for line in lines if (m := re.match(r"model (\S+): (.*)$", line))
    }
    assert set(models) == set(SHIPPED_MODELS)
    assert models["claude-sonnet"] == (
        "anthropic at https://api.anthropic.com/v1: disabled (CLAUDE_API_KEY not set)"
    )
    assert (
        models["gpt-4"] == "openai at https://api.openai.com/v1: disabled (OPENAI_API_KEY not set)"
    )
    assert models["ollama-local"] == "ollama at -: disabled (LOCAL_MODEL_URL not set)"
    assert any("no model is enabled" in line for line in lines)
    assert not any(line.startswith("alerts") for line in lines)  # no alerts.yaml shipped


def test_check_config_names_the_alert_destinations_never_their_urls(cli: Cli) -> None:
    shutil.copy(cli.config_dir / "alerts.example.yaml", cli.config_dir / "alerts.yaml")
    secret = "https://hooks.slack.example/services/T0/B0/s3cr3t"
    done = cli("check-config", SLACK_WEBHOOK_URL=secret)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "alerts to security-slack: slack, budget_exceeded, dlp_block, policy_error" in lines
    assert "alerts to oncall: disabled (PD_ROUTING_KEY not set)" in lines
    assert "s3cr3t" not in done.stdout + done.stderr


def test_check_config_with_every_provider_configured(cli: Cli) -> None:
    done = cli(
        "check-config",
        CLAUDE_API_KEY="sk-ant-test-secret-1234",
        OPENAI_API_KEY="sk-test-secret-5678",
        LOCAL_MODEL_URL="http://127.0.0.1:11434",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for model in SHIPPED_MODELS:
        line = next(line for line in lines if line.startswith(f"model {model}:"))
        assert line.endswith(": enabled"), line
    assert "model ollama-local: ollama at http://127.0.0.1:11434: enabled" in lines
    assert not any("no model is enabled" in line for line in lines)
    for secret in ("sk-ant-test-secret-1234", "sk-test-secret-5678"):
        assert secret not in done.stdout + done.stderr


def _replace(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"{old!r} is no longer in the shipped config"
        return text.replace(old, new, count)

    return edit


def _after(anchor: str, line: str) -> Callable[[str], str]:
    """Insert ``line`` (indented like ``anchor``) just after the first line containing anchor."""

    def edit(text: str) -> str:
        lines = text.splitlines()
        i = next(i for i, current in enumerate(lines) if anchor in current)
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines.insert(i + 1, indent + line)
        return "\n".join(lines) + "\n"

    return edit


#: id -> (edit of routing_policies.yaml, text on the broken line, field named in stderr, ...)
BROKEN_ROUTING: dict[str, tuple[Callable[[str], str], str | None, tuple[str, ...]]] = {
    "negative_timeout": (
        _replace("timeout_ms: 45000", "timeout_ms: -5"),
        "timeout_ms: -5",
        ("routing.models.gpt-4.timeout_ms", "greater than 0"),
    ),
    "timeout_not_a_number": (
        _replace("timeout_ms: 45000", "timeout_ms: soon"),
        "timeout_ms: soon",
        ("routing.models.gpt-4.timeout_ms",),
    ),
    "unknown_field": (
        _after("timeout_ms: 45000", "timeout_msec: 100"),
        "timeout_msec: 100",
        ("routing.models.gpt-4.timeout_msec", "xtra"),
    ),
    "endpoint_not_http": (
        _replace("endpoint: https://api.openai.com/v1", "endpoint: ftp://api.openai.com/v1"),
        "endpoint: ftp://",
        ("routing.models.gpt-4.endpoint", "http"),
    ),
    "unknown_strategy": (
        _replace("default_strategy: weighted", "default_strategy: random"),
        "default_strategy: random",
        ("routing.default_strategy",),
    ),
    "fallback_to_unknown_model": (
        _replace("      - gpt-4\n      - ollama-local", "      - gpt-5\n      - ollama-local"),
        "- gpt-5",
        ("routing.fallback_chains.production.1", "unknown model 'gpt-5'"),
    ),
    "negative_weight": (
        _replace("weight: 30", "weight: -30"),
        "weight: -30",
        ("routing.models.gpt-4.weight",),
    ),
    "duplicate_key": (
        _after("timeout_ms: 45000", "timeout_ms: 1000"),
        "timeout_ms: 1000",
        ("duplicate key 'timeout_ms'",),
    ),
    "bad_yaml": (
        _replace("default_strategy: weighted", "default_strategy: [weighted"),
        None,  # a YAML error is reported where the parser noticed it
        ("not valid YAML",),
    ),
    "bad_indentation": (
        _replace("      upstream_model: gpt-4o", "     upstream_model: gpt-4o"),
        None,
        ("not valid YAML",),
    ),
}


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("case", list(BROKEN_ROUTING))
def test_check_config_names_file_line_and_field(cli: Cli, case: str) -> None:
    edit, needle, expected = BROKEN_ROUTING[case]
    path = cli.config_dir / "routing_policies.yaml"
    broken = edit(path.read_text())
    path.write_text(broken)

    done = cli("check-config")

    assert done.returncode == 2, (done.stdout, done.stderr)
    no_traceback(done)
    assert done.stdout == ""
    if needle is not None:
        assert f"{path}:{_line_of(broken, needle)}:" in done.stderr, done.stderr
    else:
        assert re.search(rf"{re.escape(str(path))}:\d+:", done.stderr), done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


def test_check_config_does_not_echo_a_secret(cli: Cli) -> None:
    """A bad value under a secret-looking key is reported without the value."""
    path = cli.config_dir / "routing_policies.yaml"
    broken = _after("upstream_model: gpt-4o", "api_key: 987654321987")(path.read_text())
    path.write_text(broken)
    done = cli("check-config")
    assert done.returncode == 2
    assert f"{path}:{_line_of(broken, 'api_key: 987654321987')}:" in done.stderr
    assert "routing.models.gpt-4.api_key" in done.stderr
    assert "987654321987" not in done.stderr


def test_check_config_broken_pricing(cli: Cli) -> None:
    path = cli.config_dir / "pricing.yaml"
    broken = _replace("input_per_million: 2.50", "input_per_million: cheap")(path.read_text())
    path.write_text(broken)
    done = cli("check-config")
    assert done.returncode == 2
    no_traceback(done)
    assert f"{path}:{_line_of(broken, 'input_per_million: cheap')}:" in done.stderr
    assert "input_per_million" in done.stderr


BROKEN_TIERS = {
    # case: (the shipped line, its broken form, what the error names)
    "negative_rate": (
        "requests_per_minute: 10", "requests_per_minute: -10", "tiers.free.requests_per_minute",
    ),
    "word_for_tokens": (
        "tokens_per_month: 100000", "tokens_per_month: lots", "tiers.free.tokens_per_month",
    ),
    "unserved_model": (
        'models: ["demo", "ollama-local", "auto"]', 'models: ["demo", "gpt-3.5-turbo"]',
        "tiers.free.models[1]: no route serves 'gpt-3.5-turbo'",
    ),
    "unknown_field": (
        "tokens_per_month: 100000", "tokens_per_mont: 100000", "tiers.free.tokens_per_mont",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN_TIERS))
def test_check_config_names_the_tiers_file_line_and_field(cli: Cli, case: str) -> None:
    old, new, expected = BROKEN_TIERS[case]
    path = cli.config_dir / "rate_limits.yaml"
    broken = path.read_text().replace(old, new, 1)
    assert broken != path.read_text()
    path.write_text(broken)
    done = cli("check-config")
    assert done.returncode == 2, (done.stdout, done.stderr)
    no_traceback(done)
    assert f"{path}:{_line_of(broken, new)}:" in done.stderr, done.stderr
    assert expected in done.stderr


def test_check_config_accepts_the_specifications_tiers_format(cli: Cli) -> None:
    """The specification's file, with model names this gateway serves, and `unlimited`."""
    (cli.config_dir / "rate_limits.yaml").write_text(
        "tiers:\n"
        "  free: {requests_per_minute: 10, tokens_per_month: 100000, models: [demo]}\n"
        "  enterprise: {requests_per_minute: 1000, tokens_per_month: unlimited, models: ['*']}\n"
    )
    (cli.tmp / "policies" / "rego" / "authz_test.rego").unlink()  # they test the shipped tiers
    access = cli.tmp / "policies" / "data" / "access.yaml"
    access.write_text(
        "access:\n  tiers:\n    free: {models: [demo]}\n    enterprise: {models: ['*']}\n"
    )
    done = cli("check-config")
    assert done.returncode == 0, done.stderr
    assert "ok: the tiers of rate_limits.yaml agree" in done.stdout


def test_check_config_fails_where_the_tiers_and_the_policy_disagree(cli: Cli) -> None:
    path = cli.config_dir / "rate_limits.yaml"
    free = 'models: ["demo", "ollama-local", "auto"]'
    text = path.read_text().replace(free, 'models: ["demo", "gpt-4", "auto"]')
    path.write_text(text.replace("  enterprise:", "  gold:\n    models: ['*']\n  enterprise:"))
    done = cli("check-config")
    assert done.returncode == 1
    no_traceback(done)
    for problem in (
        "tier 'gold' is in rate_limits.yaml but not in data.access.tiers",
        "tier 'free': 'gpt-4' is in rate_limits.yaml only",
        "tier 'free': 'ollama-local' is in data.access.tiers only",
    ):
        assert problem in done.stderr


def test_usage_prints_totals_from_the_audit_trail(cli: Cli) -> None:
    assert cli("db", "upgrade").returncode == 0
    done = cli("usage", "--group-by", "model", "--from", "2026-01-01")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:6] == ["MODEL", "REQUESTS", "TOKENS", "IN", "TOKENS", "OUT"]
    assert done.stdout.splitlines()[-1].split() == ["TOTAL", "0", "0", "0", "0", "0.000000"]
    bad = cli("usage", "--from", "last tuesday")
    assert bad.returncode == 1
    assert "ISO 8601" in bad.stderr
    no_traceback(bad)


@pytest.mark.parametrize("name", ["jwt_secret", "dlp_vault_key"])
@pytest.mark.parametrize("content", ["", "c2hvcnQ="])
def test_a_cut_short_development_secret_stops_start_up_with_one_line(
    cli: Cli, name: str, content: str
) -> None:
    assert cli("token", "create", "--user", "u", "--role", "user", "--tier", "free").returncode == 0
    (cli.data_dir / "dlp_vault_key").write_text("A" * 43 + "=")  # a whole key
    (cli.data_dir / name).write_text(content)
    for command in (["check-config"], ["serve"]):
        done = cli(*command)
        assert done.returncode == 2, done.stderr
        no_traceback(done)
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"error: {cli.data_dir / name} ")
        assert "delete it" in line


def test_check_config_missing_routing_file(cli: Cli) -> None:
    path = cli.config_dir / "routing_policies.yaml"
    path.unlink()
    done = cli("check-config")
    assert done.returncode == 2
    no_traceback(done)
    assert f"{path}: file not found" in done.stderr


def test_invalid_setting_exits_2_without_echoing_the_secret(cli: Cli) -> None:
    done = cli("check-config", JWT_SECRET="short-secret-value", API_PORT="eighty")
    assert done.returncode == 2
    no_traceback(done)
    assert "API_PORT" in done.stderr
    assert "short-secret-value" not in done.stderr


# --- token create ----------------------------------------------------------------


def _decode(
    token: str, secret: str, *, audience: str | None = None, issuer: str | None = None
) -> dict[str, object]:
    """The token's claims, verified with ``secret`` (and ``audience`` and ``issuer`` if given)."""
    return jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        options={"verify_aud": False},
        audience=audience,
        issuer=issuer,
    )


def test_token_create_prints_only_a_verifiable_token(cli: Cli) -> None:
    done = cli(
        "token", "create", "--user", "alice", "--role", "admin", "--tier", "gold",
        "--team", "blue", "--tenant", "acme",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n")
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    token = lines[0]

    secret_file = cli.data_dir / "jwt_secret"
    assert secret_file.is_file(), "the development secret is created in DATA_DIR"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret.encode()) >= 32
    assert secret not in done.stdout + done.stderr

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = _decode(token, secret)
    assert {k: v for k, v in claims.items() if k not in ("iat", "exp")} == {
        "sub": "alice", "role": "admin", "tier": "gold", "team": "blue", "tenant": "acme",
    }  # fmt: skip
    assert isinstance(claims["iat"], int)
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 3600  # JWT_EXPIRATION's default
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(token, "some-other-secret-" + "z" * 32)

    again = cli("token", "create", "--user", "bob", "--role", "user", "--tier", "free")
    assert again.returncode == 0
    assert secret_file.read_text().strip() == secret  # the secret is kept, not replaced
    assert _decode(again.stdout.strip(), secret)["sub"] == "bob"
    assert "team" not in _decode(again.stdout.strip(), secret)


def test_token_create_honours_jwt_settings(cli: Cli) -> None:
    secret = "configured-secret-" + "s" * 32
    done = cli(
        "token", "create", "--user", "alice", "--role", "user", "--tier", "free",
        JWT_SECRET=secret, JWT_EXPIRATION="120", JWT_ISSUER="https://issuer.test",
        JWT_AUDIENCE="llm-gateway",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    claims = _decode(
        done.stdout.strip(), secret, audience="llm-gateway", issuer="https://issuer.test"
    )
    assert isinstance(claims["iat"], int)
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 120
    assert not (cli.data_dir / "jwt_secret").exists()  # JWT_SECRET set: no file needed


def test_token_create_requires_the_identity(cli: Cli) -> None:
    done = cli("token", "create", "--user", "alice", "--role", "user")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--tier" in done.stderr


# --- keys ------------------------------------------------------------------------


def _create(cli: Cli, *args: str) -> tuple[str, str]:
    done = cli("keys", "create", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    match = re.fullmatch(r"lsg_([0-9a-f]{12})_[A-Za-z0-9_-]{40,}", lines[0])
    assert match, lines[0]
    assert f"key id {match.group(1)}" in done.stderr
    assert lines[0] not in done.stderr
    return lines[0], match.group(1)


def _listed(cli: Cli, *args: str) -> dict[str, list[str]]:
    done = cli("keys", "list", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["KEY", "ID", "USER", "ROLE", "TIER", "TENANT", "STATE"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_keys_create_list_revoke(cli: Cli) -> None:
    key, key_id = _create(cli, "--user", "svc", "--role", "user", "--tier", "premium")
    other, other_id = _create(
        cli, "--user", "batch", "--role", "service", "--tier", "free", "--tenant", "acme",
        "--description", "nightly jobs",
    )  # fmt: skip

    listing = cli("keys", "list")
    assert listing.returncode == 0
    for secret in (key, other, key.split("_", 2)[2], other.split("_", 2)[2]):
        assert secret not in listing.stdout + listing.stderr
    rows = _listed(cli)
    assert rows[key_id] == ["svc", "user", "premium", "-", "active"]
    assert rows[other_id] == ["batch", "service", "free", "acme", "active"]
    assert set(_listed(cli, "--tenant", "acme")) == {other_id}

    # only the SHA-256 of a key is stored, nowhere the key itself
    db = cli.data_dir / "gateway.db"
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT key_id, key_sha256 FROM api_keys").fetchall())
    assert stored[key_id] == hashlib.sha256(key.encode()).hexdigest()
    for path in cli.data_dir.iterdir():
        content = path.read_bytes()
        assert key.encode() not in content
        assert key.split("_", 2)[2].encode() not in content

    revoked = cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {key_id}"
    rows = _listed(cli)
    assert rows[key_id][:4] == ["svc", "user", "premium", "-"]
    assert rows[key_id][4] == "revoked"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rows[key_id][5])
    assert rows[other_id][-1] == "active"

    twice = cli("keys", "revoke", key_id)
    assert twice.returncode == 1
    assert f"no active key with id {key_id}" in twice.stderr


def test_keys_revoke_unknown_id(cli: Cli) -> None:
    done = cli("keys", "revoke", "0123456789ab")
    assert done.returncode == 1
    no_traceback(done)
    assert done.stdout == ""
    assert "no active key with id 0123456789ab" in done.stderr


def test_keys_expiry(cli: Cli) -> None:
    _, past_id = _create(
        cli, "--user", "old", "--role", "user", "--tier", "free", "--expires", "2000-01-01"
    )
    _, future_id = _create(
        cli, "--user", "new", "--role", "user", "--tier", "free", "--expires", "30d"
    )
    rows = _listed(cli)
    assert rows[past_id][-1] == "expired"
    assert rows[future_id][-1] == "active"

    bad = cli("keys", "create", "--user", "x", "--role", "user", "--tier", "free",
              "--expires", "someday")  # fmt: skip
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "--expires" in bad.stderr
    no_traceback(bad)


def test_keys_show_and_rotate(cli: Cli) -> None:
    key, key_id = _create(
        cli, "--user", "svc", "--role", "service", "--tier", "premium", "--tenant", "acme",
        "--team", "red", "--environment", "staging", "--models", "gpt-emu, claude-emu",
    )  # fmt: skip
    rotated = cli("keys", "rotate", key_id, "--overlap", "3600")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    new_id = new_key.split("_")[1]
    assert new_id != key_id
    assert f"key id {new_id} replaces {key_id}" in rotated.stderr
    assert new_key not in rotated.stderr

    rows = _listed(cli)
    assert rows[key_id] == ["svc", "service", "premium", "acme", "rotating"]
    assert rows[new_id] == ["svc", "service", "premium", "acme", "active"]
    shown = cli("keys", "show", key_id)
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(maxsplit=1) for line in shown.stdout.splitlines())
    assert fields["replaced_by"] == new_id
    assert fields["team"] == "red"
    assert fields["environment"] == "staging"
    assert fields["state"] == "rotating"
    assert fields["allowed_models"] == "gpt-emu,claude-emu"
    assert key not in shown.stdout
    assert "key_sha256" not in shown.stdout

    again = cli("keys", "rotate", key_id)
    assert again.returncode == 1
    assert "only an active key can be rotated" in again.stderr
    no_traceback(again)
    unknown = cli("keys", "show", "0123456789ab")
    assert unknown.returncode == 1
    assert "no key with id 0123456789ab" in unknown.stderr


def test_keys_on_an_unreachable_database(cli: Cli) -> None:
    done = cli("keys", "list", DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    assert done.returncode == 1
    no_traceback(done)
    assert done.stderr.startswith("error:")


# --- db upgrade ------------------------------------------------------------------


def test_db_upgrade_on_a_fresh_sqlite_file(cli: Cli) -> None:
    path = cli.tmp / "fresh" / "nested" / "audit.db"
    url = f"sqlite:///{path}"
    done = cli("db", "upgrade", DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    assert done.stdout.strip() == "database schema is up to date"
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        columns = {r[1] for r in conn.execute("PRAGMA table_info(audit_logs)")}
    assert {"audit_logs", "api_keys", "alembic_version"} <= tables
    assert len(versions) == 1
    assert {"request_id", "timestamp", "user_id", "model", "tokens_used", "cost_usd"} <= columns

    again = cli("db", "upgrade", DATABASE_URL=url)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == versions


def test_db_upgrade_defaults_to_data_dir(cli: Cli) -> None:
    done = cli("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert (cli.data_dir / "gateway.db").is_file()


def test_db_upgrade_on_an_unreachable_database(cli: Cli) -> None:
    done = cli("db", "upgrade", DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    assert done.returncode == 1
    no_traceback(done)
    assert done.stderr.startswith("error:")
    assert "nobody" not in done.stdout


def test_serve_on_a_database_that_is_down_says_so_in_one_line(cli: Cli) -> None:
    url = "postgresql://gw:pw-not-shown@127.0.0.1:9/llm"  # nothing listens on port 9
    done = cli("serve", DATABASE_URL=url)
    assert done.returncode == 3
    no_traceback(done)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the database postgresql+asyncpg://gw:***@127.0.0.1:9/llm")
    assert line.endswith("cannot be used: connection refused")


# --- the command as a process ----------------------------------------------------

ENTRY_POINT = Path(sys.executable).parent / "llm-gateway"


def test_the_installed_entry_point_runs_a_command_and_exits_with_its_status(cli: Cli) -> None:
    """The console script ``llm-gateway`` (pyproject's [project.scripts]) is ``main``'s exit."""
    if not ENTRY_POINT.exists():
        pytest.skip(f"{ENTRY_POINT} is not installed (pip install -e .)")
    done = cli.process([str(ENTRY_POINT)], "check-config")
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    assert f"ok: {cli.config_dir / 'routing_policies.yaml'}" in done.stdout.splitlines()

    broken = cli.process([str(ENTRY_POINT)], "check-config", API_PORT="eighty")
    assert broken.returncode == 2
    assert "API_PORT" in broken.stderr
    no_traceback(broken)


def test_python_m_runs_the_command_and_a_usage_error_exits_2(cli: Cli) -> None:
    """``python -m llm_gateway.cli``: ``main``'s status, and argparse's usage error, as exits."""
    command = [sys.executable, "-m", "llm_gateway.cli"]
    token = cli.process(command, "token", "create", "--user", "a", "--role", "user", "--tier", "f")
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.splitlines()) == 1
    assert jwt.get_unverified_header(token.stdout.strip())["alg"] == "HS256"

    usage = cli.process(command, "token", "create", "--user", "alice", "--role", "user")
    assert usage.returncode == 2
    assert usage.stdout == ""
    assert "--tier" in usage.stderr


# --- tenants, teams, users ---------------------------------------------------------------


def test_teams_and_users_on_any_tenant(cli: Cli) -> None:
    made = cli("teams", "create", "red", "--tenant", "acme", "--tier", "premium")
    assert made.returncode == 0, made.stderr
    assert "name=red" in made.stdout
    assert "tier=premium" in made.stdout
    assert cli("users", "create", "ada", "--tenant", "acme", "--team", "red").returncode == 0
    assert "team=red" in cli("users", "show", "ada", "--tenant", "acme").stdout
    assert cli("teams", "list", "--tenant", "globex").stdout == ""
    assert cli("teams", "show", "red", "--tenant", "globex").returncode == 1
    updated = cli("teams", "update", "red", "--tenant", "acme", "--tier", "free")
    assert "tier=free" in updated.stdout
    assert "tier=free" in cli("teams", "list", "--tenant", "acme").stdout
    assert cli("users", "delete", "ada", "--tenant", "acme").returncode == 0
    assert cli("users", "list", "--tenant", "acme").stdout == ""
    assert cli("teams", "delete", "red", "--tenant", "acme").returncode == 0
    tenant = cli("tenants", "update", "acme", "--display-name", "Acme", "--tier", "free")
    assert "display_name=Acme" in tenant.stdout
    assert "tier=free" in cli("tenants", "show", "acme").stdout


def test_teams_and_tenants_carry_budgets(cli: Cli) -> None:
    made = cli("teams", "create", "red", "--tenant", "acme", "--tokens-per-month", "5000")
    assert made.returncode == 0, made.stderr
    assert "tokens_per_month=5000" in made.stdout
    assert "requests_per_minute=-" in made.stdout
    updated = cli(
        "teams", "update", "red", "--tenant", "acme",
        "--requests-per-minute", "30", "--cost-per-month-usd", "12.5",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    shown = cli("teams", "show", "red", "--tenant", "acme").stdout
    for field in ("tokens_per_month=5000", "requests_per_minute=30", "cost_per_month_usd=12.5"):
        assert field in shown
    tenant = cli("tenants", "update", "acme", "--tokens-per-month", "9")
    assert "tokens_per_month=9" in tenant.stdout
    for bad in ("-1", "many"):
        refused = cli("teams", "update", "red", "--tenant", "acme", "--tokens-per-month", bad)
        assert refused.returncode == 2
        assert "--tokens-per-month" in refused.stderr
    assert cli("teams", "create", "x", "--cost-per-month-usd", "inf").returncode == 2


def test_users_carry_budgets_and_none_clears_a_users_teams_or_tenants(cli: Cli) -> None:
    made = cli(
        "users", "create", "ada", "--tenant", "acme",
        "--tokens-per-month", "5000", "--cost-per-month-usd", "2.5",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    for field in ("tokens_per_month=5000", "cost_per_month_usd=2.5", "requests_per_minute=-"):
        assert field in made.stdout
    updated = cli("users", "update", "ada", "--tenant", "acme", "--tokens-per-month", "none")
    assert updated.returncode == 0, updated.stderr
    shown = cli("users", "show", "ada", "--tenant", "acme").stdout
    assert "tokens_per_month=-" in shown
    assert "cost_per_month_usd=2.5" in shown  # a budget not named stays as it is
    assert "cost_per_month_usd=2.5" in cli("users", "list", "--tenant", "acme").stdout

    cli("teams", "create", "red", "--tenant", "acme", "--requests-per-minute", "30")
    cleared = cli("teams", "update", "red", "--tenant", "acme", "--requests-per-minute", "none")
    assert "requests_per_minute=-" in cleared.stdout
    cli("tenants", "update", "acme", "--cost-per-month-usd", "9", "--tokens-per-month", "7")
    tenant = cli("tenants", "update", "acme", "--cost-per-month-usd", "none")
    assert "cost_per_month_usd=-" in tenant.stdout
    assert "tokens_per_month=7" in tenant.stdout
    for flag, bad in (("--tokens-per-month", "-1"), ("--cost-per-month-usd", "None"),
                      ("--requests-per-minute", "many")):  # fmt: skip
        refused = cli("users", "update", "ada", "--tenant", "acme", flag, bad)
        assert refused.returncode == 2
        assert flag in refused.stderr
