"""docker-compose.yml, parsed: its services, volume, health checks and dependencies,
and every variable it reads is a setting listed in .env.example."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from llm_gateway.settings import settings_variables
from tests.deploy.tools import REPO

COMPOSE = REPO / "docker-compose.yml"
# ${NAME}, ${NAME:-default}, ${NAME:?message}; $$ escapes a dollar for the container.
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
REQUIRED = ("JWT_SECRET", "DB_PASSWORD", "DLP_VAULT_KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _interpolated() -> set[str]:
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(INTERPOLATED.findall("\n".join(lines)))


def _env_example_names() -> set[str]:
    names = set()
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0])
    return names


def test_the_services(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {"gateway", "migrate", "postgres", "redis", "opa"}


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) == {"postgres-data"}
    assert "postgres-data:/var/lib/postgresql/data" in _services(compose)["postgres"]["volumes"]


@pytest.mark.parametrize("name", ["gateway", "postgres", "redis", "opa"])
def test_long_running_services_have_a_health_check(compose: dict[str, Any], name: str) -> None:
    check = _services(compose)[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["interval"]
    assert check["retries"]


def test_the_gateway_waits_for_the_migration_redis_and_opa(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services["gateway"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
        "opa": {"condition": "service_healthy"},
    }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["image"] == services["gateway"]["image"]


def test_the_gateway_uses_postgres_redis_and_opa(compose: dict[str, Any]) -> None:
    env = _services(compose)["gateway"]["environment"]
    assert env["DB_HOST"] == "postgres"
    assert env["STATE_BACKEND"] == "redis"
    assert env["REDIS_HOST"] == "redis"
    assert env["DLP_VAULT"] == "redis"
    assert env["OPA_URL"] == "http://opa:8181"
    assert env["OPA_POLICY_PATH"] == "/v1/data/llm/authz/decision"
    assert env["API_HOST"] == "0.0.0.0"
    assert "/ready" in " ".join(_services(compose)["gateway"]["healthcheck"]["test"])
    # The migration reads the same database settings.
    assert _services(compose)["migrate"]["environment"].items() <= env.items()
    # Every variable set for the gateway is one of its settings.
    assert set(env) <= set(settings_variables())


def test_opa_loads_the_shipped_policy_and_data(compose: dict[str, Any]) -> None:
    opa = _services(compose)["opa"]
    assert opa["image"].startswith("openpolicyagent/opa:1.")
    assert "./policies:/policies:ro" in opa["volumes"]
    assert opa["command"][:2] == ["run", "--server"]
    assert {"/policies/rego", "/policies/data"} <= set(opa["command"])
    assert (REPO / "policies" / "rego").is_dir()
    assert (REPO / "policies" / "data").is_dir()


def test_the_gateway_and_migration_run_hardened(compose: dict[str, Any]) -> None:
    for name in ("gateway", "migrate"):
        service = _services(compose)[name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert {"/tmp", "/app/data"} <= set(service["tmpfs"])


def test_every_interpolated_variable_is_a_setting_in_env_example() -> None:
    used = _interpolated()
    assert used, "no ${VAR} found: the pattern is wrong"
    assert used <= _env_example_names(), sorted(used - _env_example_names())


def test_the_secrets_must_be_set() -> None:
    text = COMPOSE.read_text()
    for name in REQUIRED:
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} is not required (:?)"
    assert not re.search(r"(JWT_SECRET|DLP_VAULT_KEY|DB_PASSWORD): [^$\s]", text)
