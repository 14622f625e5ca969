"""The Kubernetes manifests: rendered with `kubectl kustomize`, validated against a
pinned Kubernetes version's schemas (kubernetes-validate, strict), and checked for
what docs/deployment.md promises of them."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_gateway.settings import settings_variables
from tests.deploy.tools import K8S, KUBERNETES_VERSION, REPO, require_module, require_tool

OVERLAYS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
SECRET_EXAMPLE = K8S / "secret.example.yaml"


def _shipped_config() -> list[Path]:
    """The configuration files the gateway reads (examples to copy from are not shipped)."""
    return [p for p in (REPO / "config").glob("*.yaml") if not p.name.endswith(".example.yaml")]


def _secret_example() -> dict[str, Any]:
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert isinstance(secret, dict)
    return secret


def _render(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl", "install kubectl (it carries kustomize)")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _render(OVERLAYS[request.param])


def _one(resources: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def _container(resources: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    (container,) = _one(resources, kind)["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_every_resource_is_valid_for_the_pinned_kubernetes(
    rendered: list[dict[str, Any]],
) -> None:
    require_module("kubernetes_validate", "pip install -e '.[dev]' (kubernetes-validate)")
    import kubernetes_validate

    for resource in [*rendered, _secret_example()]:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message}")


def test_the_kinds(rendered: list[dict[str, Any]]) -> None:
    kinds = {r["kind"] for r in rendered}
    assert {
        "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
        "ConfigMap", "NetworkPolicy", "Job", "ServiceAccount",
    } <= kinds  # fmt: skip
    # The Secret is never applied with the manifests (it would replace the real one).
    assert "Secret" not in kinds


def test_the_deployment_has_three_replicas_and_probes(rendered: list[dict[str, Any]]) -> None:
    deployment = _one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = _container(rendered)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    port = container["ports"][0]
    assert (port["name"], port["containerPort"]) == ("http", 8080)


def test_requests_and_limits(rendered: list[dict[str, Any]]) -> None:
    resources = _container(rendered)["resources"]
    assert resources["requests"] == {"cpu": "500m", "memory": "256Mi"}
    assert resources["limits"] == {"cpu": "1", "memory": "512Mi"}
    # One worker per pod, so that the CPU limit (one core) is what the worker can use.
    assert _env(rendered)["WORKERS"] == "1"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_unprivileged_on_a_read_only_root(
    rendered: list[dict[str, Any]], kind: str
) -> None:
    pod = _one(rendered, kind)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = _container(rendered, kind)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"] for m in _container(rendered, kind)["volumeMounts"]
              if m["name"] in writable}  # fmt: skip
    assert "/tmp" in mounts
    if kind == "Deployment":
        assert mounts == {"/tmp", "/app/data"}


def test_the_termination_grace_covers_the_gateways_shutdown(
    rendered: list[dict[str, Any]],
) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    env = _env(rendered)
    pre_stop = int(_container(rendered)["lifecycle"]["preStop"]["exec"]["command"][1])
    needed = pre_stop + int(env["SHUTDOWN_GRACE_SECONDS"]) + int(env["AUDIT_WAIT_SECONDS"])
    assert needed < pod["terminationGracePeriodSeconds"]


def _env(rendered: list[dict[str, Any]]) -> dict[str, str]:
    (ref,) = _container(rendered)["envFrom"]
    name = ref["configMapRef"]["name"]
    data = _one(rendered, "ConfigMap", name)["data"]
    assert isinstance(data, dict)
    return data


def test_no_state_lives_in_the_pods(rendered: list[dict[str, Any]]) -> None:
    env = _env(rendered)
    assert env["STATE_BACKEND"] == "redis"
    assert env["DLP_VAULT"] == "redis"
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _container(rendered)["env"]}
    # Required (not optional): a pod without them would make per-pod secrets or use SQLite.
    for name in ("JWT_SECRET", "DLP_VAULT_KEY", "DATABASE_URL"):
        assert from_secret[name].get("optional") is not True, name
    secret = _secret_example()["stringData"]
    assert secret["DATABASE_URL"].startswith("postgresql://")
    assert set(from_secret) <= set(secret)
    assert {ref["name"] for ref in from_secret.values()} == {_secret_example()["metadata"]["name"]}
    assert set(env) | set(from_secret) <= set(settings_variables())


def test_the_secret_holds_placeholders_only() -> None:
    secret = _secret_example()["stringData"]
    for name, value in secret.items():
        assert value == "" or "REPLACE_ME" in value, name


def test_the_placeholders_do_not_start_a_gateway() -> None:
    from llm_gateway.dlp.vault_crypto import VaultKeyError, parse_vault_key
    from llm_gateway.settings import SettingsError, load_settings

    secret = _secret_example()["stringData"]
    with pytest.raises(SettingsError, match="JWT_SECRET: expected at least 32 bytes"):
        load_settings({"JWT_SECRET": secret["JWT_SECRET"]}, env_file=None)
    with pytest.raises(VaultKeyError, match="DLP_VAULT_KEY"):
        parse_vault_key(secret["DLP_VAULT_KEY"])


def test_config_and_policy_are_mounted_from_config_maps(rendered: list[dict[str, Any]]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in _container(rendered)["volumeMounts"]}
    env = _env(rendered)
    config = _one(rendered, "ConfigMap", volumes[mounts[env["CONFIG_DIR"]]["name"]]
                  ["configMap"]["name"])  # fmt: skip
    assert set(config["data"]) == {p.name for p in _shipped_config()}
    policy = volumes[mounts[env["POLICY_DIR"]]["name"]]["configMap"]
    assert {i["path"] for i in policy["items"]} == {"rego/authz.rego", "data/access.yaml"}
    assert (
        _one(rendered, "ConfigMap", policy["name"])["data"]["authz.rego"]
        == (REPO / "policies" / "rego" / "authz.rego").read_text()
    )


def test_the_copies_of_config_and_policy_match_their_sources() -> None:
    files = K8S / "base" / "files"
    pairs = [(p, files / "config" / p.name) for p in _shipped_config()]
    pairs += [
        (REPO / "policies" / "rego" / "authz.rego", files / "policies" / "authz.rego"),
        (REPO / "policies" / "data" / "access.yaml", files / "policies" / "access.yaml"),
    ]
    stale = [str(copy) for source, copy in pairs if not filecmp.cmp(source, copy, shallow=False)]
    assert not stale, f"run `make k8s-files`: {stale} differ from their sources"
    assert {p.name for p in (files / "config").iterdir()} == {p.name for p, _ in pairs[:-2]}


def test_disruption_budget_and_autoscaler(rendered: list[dict[str, Any]]) -> None:
    selector = _one(rendered, "Deployment")["spec"]["selector"]["matchLabels"]
    assert _one(rendered, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1, "selector": {"matchLabels": selector}
    }  # fmt: skip
    hpa = _one(rendered, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == _one(rendered, "Deployment")["metadata"]["name"]
    assert hpa["minReplicas"] == 3
    assert hpa["maxReplicas"] > hpa["minReplicas"]
    assert _one(rendered, "Service")["spec"]["selector"] == selector


def test_network_policy_egress(rendered: list[dict[str, Any]]) -> None:
    policy = _one(rendered, "NetworkPolicy", "llm-gateway")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 6379, 5432, 8181, 443}
    (public,) = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert public["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert "10.0.0.0/8" in public["to"][0]["ipBlock"]["except"]
    migrate = _one(rendered, "NetworkPolicy", "llm-gateway-migrate")
    assert {p["port"] for rule in migrate["spec"]["egress"] for p in rule["ports"]} == {53, 5432}


def test_the_migration_job(rendered: list[dict[str, Any]]) -> None:
    job = _one(rendered, "Job")
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
    assert _container(rendered, "Job")["args"] == ["db", "upgrade"]
    assert _container(rendered, "Job")["image"] == _container(rendered)["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # `kubectl apply -k ... -l app.kubernetes.io/component=migration` applies these.
    component = "app.kubernetes.io/component"
    labelled = {
        (r["kind"], r["metadata"]["name"])
        for r in rendered
        if r["metadata"].get("labels", {}).get(component) == "migration"
    }
    assert labelled == {("Job", "llm-gateway-migrate"), ("NetworkPolicy", "llm-gateway-migrate")}
    # The gateway's pods never migrate: the Job does, once.
    assert "MIGRATE_ON_START" not in _env(rendered)


def test_production_sets_namespace_image_and_environment() -> None:
    rendered = _render(OVERLAYS["production"])
    namespaced = [r for r in rendered if r["kind"] != "Namespace"]
    assert {r["metadata"].get("namespace") for r in namespaced} == {"llm-gateway"}
    assert _container(rendered)["image"] == "registry.example.com/llm-gateway:0.1.0"
    assert _env(rendered)["ENVIRONMENT"] == "production"
    namespace = _one(rendered, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
