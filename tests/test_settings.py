from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_gateway.dlp.findings import Action, Operator
from llm_gateway.settings import (
    AutoOnOff,
    Settings,
    SettingsError,
    StateBackend,
    load_settings,
    settings_variables,
)
from llm_gateway.settings.declare import VAR, Var
from llm_gateway.settings.loader import declared, sections
from llm_gateway.settings.reference import shown_default, with_reference

REPO = Path(__file__).parents[1]


def test_defaults_bind_to_localhost_and_sqlite() -> None:
    s = load_settings({}, env_file=None)
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert s.storage.sqlalchemy_url == "sqlite+aiosqlite:///data/gateway.db"
    assert s.auth.jwt_allowed_algorithms == ("HS256",)


def test_an_empty_environment_gives_every_declared_default() -> None:
    assert load_settings({}, env_file=None) == Settings()
    assert Settings().state.backend is StateBackend.MEMORY
    assert Settings().state.redis_dsn == "redis://127.0.0.1:6379/0"


def test_db_variables_select_postgres_and_quote_the_password() -> None:
    s = load_settings(
        {"DB_HOST": "db", "DB_USER": "gw", "DB_PASSWORD": "p@ss/word", "DB_NAME": "audit"},
        env_file=None,
    )
    assert s.storage.sqlalchemy_url == "postgresql+asyncpg://gw:p%40ss%2Fword@db:5432/audit"


def test_database_url_wins_and_gets_an_async_driver() -> None:
    s = load_settings({"DATABASE_URL": "postgresql://u@h/x", "DB_HOST": "ignored"}, env_file=None)
    assert s.storage.sqlalchemy_url == "postgresql+asyncpg://u@h/x"


def test_env_file_fills_what_the_environment_does_not_set(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("API_PORT=9000\nAPI_HOST=0.0.0.0\nOPENAI_API_KEY=\n")
    s = load_settings({"API_HOST": "10.0.0.1"}, env_file=env)
    assert s.http.port == 9000
    assert s.http.host == "10.0.0.1"
    assert s.providers.openai_api_key is None  # empty counts as unset


def test_errors_name_the_variable_its_origin_and_the_expectation(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# the port\nAPI_PORT=eighty\n")
    with pytest.raises(SettingsError) as info:
        load_settings({"LOG_FORMAT": "xml"}, env_file=env)
    message = str(info.value)
    assert f"{env}:2: API_PORT='eighty'" in message
    assert "environment: LOG_FORMAT='xml': expected one of json, text" in message


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"JWT_SECRET": "short-but-secret"}, env_file=None)
    assert "short-but-secret" not in str(info.value)
    assert "JWT_SECRET" in str(info.value)


def test_secret_values_are_not_in_the_repr() -> None:
    s = load_settings(
        {"JWT_SECRET": "x" * 40, "DB_PASSWORD": "pw-1", "OPENAI_API_KEY": "sk-1"}, env_file=None
    )
    assert not {"x" * 40, "pw-1", "sk-1"} & set(re.findall(r"[\w-]+", repr(s)))


@pytest.mark.parametrize("algorithm", ["none", "None", "HS1"])
def test_unknown_or_none_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(SettingsError, match="JWT_ALGORITHM"):
        load_settings({"JWT_ALGORITHM": algorithm}, env_file=None)


def test_asymmetric_algorithms_need_a_key_source() -> None:
    with pytest.raises(SettingsError, match="JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE"):
        load_settings({"JWT_ALGORITHM": "RS256"}, env_file=None)


def test_a_shared_redis_vault_needs_a_key() -> None:
    with pytest.raises(SettingsError, match="DLP_VAULT=redis needs DLP_VAULT_KEY"):
        load_settings({"DLP_VAULT": "redis"}, env_file=None)


def test_choices_parse_to_their_enums_in_any_case() -> None:
    s = load_settings(
        {"DLP_MODE": "Block", "DLP_NER": " OFF ", "DLP_OPERATOR": "Token", "DEMO_MODEL": "on",
         "STATE_BACKEND": "REDIS", "DLP_ON_ERROR": "alert",
         "DLP_OPERATOR_OVERRIDES": "PERSON=token, US_SSN=mask"},
        env_file=None,
    )  # fmt: skip
    assert s.dlp.mode is Action.BLOCK
    assert s.dlp.ner is AutoOnOff.OFF
    assert s.dlp.operator is Operator.TOKEN
    assert s.dlp.on_error is Action.ALERT
    assert s.dlp.operator_overrides == (("PERSON", Operator.TOKEN), ("US_SSN", Operator.MASK))
    assert s.providers.demo_model is AutoOnOff.ON
    assert s.state.backend is StateBackend.REDIS


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DLP_ON_ERROR", "redact", "expected one of block, alert"),
        ("DLP_MODE", "drop", "expected one of block, redact, alert"),
        ("STATE_BACKEND", "disk", "expected one of memory, redis"),
        ("DLP_OPERATOR_OVERRIDES", "PERSON", "expected NAME=OPERATOR pairs"),
        ("DLP_ENABLED", "maybe", "expected true or false"),
        ("HTTP_MAX_HEADERS", "-1", "expected an integer from 0 to 100000"),
        ("POLICY_RELOAD_SECONDS", "-2", "expected a number of seconds"),
        ("OPA_URL", "opa:8181", "expected an http:// or https:// URL"),
        ("OPA_POLICY_PATH", "/v1/llm", "expected /v1/data/"),
        ("JWT_JWKS_FILE", "/nowhere/jwks.json", "expected an existing file"),
    ],
)
def test_parsers_reject_bad_values_naming_the_variable(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value}, env_file=None)
    assert f"environment: {name}=" in str(info.value)
    assert expected in str(info.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"API_PORT": "x", "DLP_NER": "maybe", "OPA_RETRIES": "9"}, env_file=None)
    assert [line.split("=")[0] for line in str(info.value).splitlines()[1:]] == [
        "  environment: API_PORT", "  environment: OPA_RETRIES", "  environment: DLP_NER"
    ]  # fmt: skip


# --- the declarations are the one list -------------------------------------


def test_every_section_field_is_declared_with_a_var() -> None:
    """What the import-time assert once checked: no field the loader cannot fill."""
    for name, cls in sections().items():
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            assert isinstance(f.metadata.get(VAR), Var), f"settings.{name}.{f.name} has no Var"
            assert f.default == f.metadata[VAR].default


def test_each_variable_is_declared_once() -> None:
    names = settings_variables()
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_shared_variables_are_read_once_into_every_section_that_needs_them(
    tmp_path: Path,
) -> None:
    s = load_settings({"DATA_DIR": str(tmp_path)}, env_file=None)
    assert s.files.data_dir == s.auth.data_dir == s.storage.data_dir == s.dlp.data_dir == tmp_path


def _env_example() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def _config_file_variables() -> set[str]:
    """Variables only the YAML files read, through ``${VAR}`` (LOCAL_MODEL_NAME)."""
    found = set()
    for path in (REPO / "config").glob("*.yaml"):
        found |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text()))
    return found


def test_env_example_lists_every_variable_and_nothing_else() -> None:
    example = _env_example()
    missing = [v for v in settings_variables() if v not in example]
    assert not missing, f".env.example lacks {missing}"
    unknown = set(example) - set(settings_variables()) - _config_file_variables()
    assert not unknown, f".env.example has undeclared {sorted(unknown)}"


def test_env_example_values_are_the_defaults() -> None:
    example = _env_example()
    for _, v in declared():
        raw = example.get(v.name, "")
        if raw:
            assert v.parse(raw) == v.default, f".env.example: {v.name}={raw}"


def test_readme_reference_is_generated_from_the_declarations() -> None:
    readme = (REPO / "README.md").read_text()
    assert with_reference(readme) == readme, (
        "README.md's settings reference is stale: "
        "python -m llm_gateway.settings.reference README.md"
    )
    for _, v in declared():
        assert f"`{v.name}`" in readme


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, ""), ((), ""), (True, "true"), (15.0, "15"), (Action.REDACT, "redact"),
     (Path("data"), "data"), (8080, "8080")],
)  # fmt: skip
def test_defaults_are_shown_as_one_writes_them(value: object, shown: str) -> None:
    assert shown_default(value) == shown


def test_settings_is_a_low_layer() -> None:
    """Importing the settings loads no other part of the gateway (only the enums it parses to:
    the DLP actions and the state store's backends, both in the base layer)."""
    code = (
        "import sys, llm_gateway.settings; "
        "print(' '.join(m for m in sys.modules if m.startswith('llm_gateway')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    outside = {m for m in out if not m.startswith(("llm_gateway.settings", "llm_gateway.state"))}
    assert outside == {"llm_gateway", "llm_gateway.dlp", "llm_gateway.dlp.findings"}
    assert "llm_gateway.state.redis" not in out  # the Redis client only when it is used
