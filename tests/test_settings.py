from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.settings import SettingsError, load_settings, settings_variables


def test_defaults_bind_to_localhost_and_sqlite() -> None:
    s = load_settings({}, env_file=None)
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8080)
    assert s.sqlalchemy_url == "sqlite+aiosqlite:///data/gateway.db"
    assert s.jwt_allowed_algorithms == ("HS256",)


def test_db_variables_select_postgres_and_quote_the_password() -> None:
    s = load_settings(
        {"DB_HOST": "db", "DB_USER": "gw", "DB_PASSWORD": "p@ss/word", "DB_NAME": "audit"},
        env_file=None,
    )
    assert s.sqlalchemy_url == "postgresql+asyncpg://gw:p%40ss%2Fword@db:5432/audit"


def test_database_url_wins_and_gets_an_async_driver() -> None:
    s = load_settings({"DATABASE_URL": "postgresql://u@h/x", "DB_HOST": "ignored"}, env_file=None)
    assert s.sqlalchemy_url == "postgresql+asyncpg://u@h/x"


def test_env_file_fills_what_the_environment_does_not_set(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("API_PORT=9000\nAPI_HOST=0.0.0.0\nOPENAI_API_KEY=\n")
    s = load_settings({"API_HOST": "10.0.0.1"}, env_file=env)
    assert s.api_port == 9000
    assert s.api_host == "10.0.0.1"
    assert s.openai_api_key is None  # empty counts as unset


def test_errors_name_the_variable_its_origin_and_the_expectation(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("API_PORT=eighty\n")
    with pytest.raises(SettingsError) as info:
        load_settings({"LOG_FORMAT": "xml"}, env_file=env)
    message = str(info.value)
    assert f"{env}: API_PORT='eighty'" in message
    assert "environment: LOG_FORMAT='xml': expected one of json, text" in message


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"JWT_SECRET": "short-but-secret"}, env_file=None)
    assert "short-but-secret" not in str(info.value)
    assert "JWT_SECRET" in str(info.value)


@pytest.mark.parametrize("algorithm", ["none", "None", "HS1"])
def test_unknown_or_none_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(SettingsError, match="JWT_ALGORITHM"):
        load_settings({"JWT_ALGORITHM": algorithm}, env_file=None)


def test_asymmetric_algorithms_need_a_key_source() -> None:
    with pytest.raises(SettingsError, match="JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE"):
        load_settings({"JWT_ALGORITHM": "RS256"}, env_file=None)


def test_env_example_lists_every_variable() -> None:
    example = (Path(__file__).parents[1] / ".env.example").read_text()
    missing = [v for v in settings_variables() if f"{v}=" not in example]
    assert not missing, f".env.example lacks {missing}"
