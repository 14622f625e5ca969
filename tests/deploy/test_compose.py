"""docker-compose.yml, parsed: its services, volumes, health checks and dependencies,
the `observability` profile's Prometheus and Grafana and the files they mount, and
every variable it reads is a setting listed in .env.example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_gateway.settings import settings_variables
from tests.deploy.tools import REPO

COMPOSE = REPO / "docker-compose.yml"
# ${NAME}, ${NAME:-default}, ${NAME:?message}; $$ escapes a dollar for the container.
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
REQUIRED = ("JWT_SECRET", "DB_PASSWORD", "DLP_VAULT_KEY")
OBSERVABILITY = ("prometheus", "grafana")


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
    services = _services(compose)
    assert set(services) == {"gateway", "migrate", "postgres", "redis", "opa", *OBSERVABILITY}
    # `docker compose up` starts the gateway and what it needs; the rest on request.
    profiled = {name for name, service in services.items() if "profiles" in service}
    assert profiled == set(OBSERVABILITY)
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["observability"]


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) == {"postgres-data", "prometheus-data", "grafana-data"}
    assert "postgres-data:/var/lib/postgresql/data" in _services(compose)["postgres"]["volumes"]


@pytest.mark.parametrize("name", ["gateway", "postgres", "redis", "opa", *OBSERVABILITY])
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


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts of the repository: container path -> repository path."""
    found = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = source.removeprefix("./")
    return found


def test_prometheus_mounts_its_configuration_and_scrapes_the_gateway(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    assert mounts == {"/etc/prometheus": "deploy/prometheus"}
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    for rules in config["rule_files"]:
        assert (REPO / mounts["/etc/prometheus"] / Path(rules).name).is_file(), rules
        assert rules.startswith("/etc/prometheus/")
    (job,) = config["scrape_configs"]
    (targets,) = [c["targets"] for c in job["static_configs"]]
    assert targets == [f"gateway:{services['gateway']['environment']['API_PORT']}"]
    # The token the gateway wants is the one Prometheus sends: written where
    # credentials_file reads it, from the same variable.
    token_file = job["authorization"]["credentials_file"]
    (script,) = prometheus["command"]
    assert f"printf '%s' \"$$METRICS_TOKEN\" > {token_file} &&" in script
    assert "--config.file=/etc/prometheus/prometheus.yml" in script
    assert script.split("&&")[1].split()[0] == "exec"
    assert prometheus["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"
    assert services["gateway"]["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"


def test_grafana_provisions_the_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    services = _services(compose)
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    assert source["isDefault"] is True  # what the dashboard's DS_PROMETHEUS picks
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "llm-gateway.yml").read_text())[
        "providers"
    ]
    dashboards = [t for t in mounts if t.startswith(provider["options"]["path"] + "/")]
    assert [mounts[t] for t in dashboards] == ["deploy/grafana/llm-gateway.json"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] in dashboards
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", OBSERVABILITY)
def test_the_observability_services_listen_on_localhost_only(
    compose: dict[str, Any], name: str
) -> None:
    for port in _services(compose)[name]["ports"]:
        assert port.startswith("127.0.0.1:"), port
