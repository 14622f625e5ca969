"""docs/deployment.md against the files it describes: the variables it names exist,
the commands it gives are real, the figures match the manifests."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from llm_gateway.settings import settings_variables
from tests.deploy.test_compose import COMPOSE, INTERPOLATED
from tests.deploy.tools import DEPLOY, K8S, REPO

GUIDE = REPO / "docs" / "deployment.md"
# Variables the guide names that are not gateway settings: the image's and the entry
# script's own.
NOT_SETTINGS = {"MIGRATE_ON_START", "INSTALL_NER"}
BACKTICKED_VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`")


def _section(heading: str) -> str:
    text = GUIDE.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + len(heading) + 1)
    return text[start : end if end != -1 else len(text)]


def _compose_variables() -> set[str]:
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(INTERPOLATED.findall("\n".join(lines)))


def test_the_readme_links_the_guide() -> None:
    assert "(docs/deployment.md)" in (REPO / "README.md").read_text()


def test_every_variable_the_guide_names_exists() -> None:
    named = set(BACKTICKED_VARIABLE.findall(GUIDE.read_text()))
    unknown = named - set(settings_variables()) - NOT_SETTINGS
    assert not unknown, f"docs/deployment.md names unknown variables {sorted(unknown)}"


def test_the_compose_section_names_every_variable_compose_reads() -> None:
    named = set(BACKTICKED_VARIABLE.findall(_section("## Docker Compose")))
    missing = _compose_variables() - named
    assert not missing, f"docs/deployment.md's Compose section lacks {sorted(missing)}"


def test_the_one_machine_section_gives_the_commands() -> None:
    section = _section("## One machine")
    for needed in ("make .venv/.installed", "DATABASE_URL=postgresql://", "STATE_BACKEND=redis",
                   "REDIS_URL=redis://", "llm-gateway db upgrade", "llm-gateway serve --workers",
                   "curl http://127.0.0.1:8080/ready"):  # fmt: skip
        assert needed in section, needed
    # The make target it names is the Makefile's.
    assert "$(VENV)/.installed:" in (REPO / "Makefile").read_text()


def test_the_sizing_table_is_the_deployments() -> None:
    deployment = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    section = _section("## Sizing")
    cpu = f"| CPU | {resources['requests']['cpu']} | {resources['limits']['cpu']} |"
    memory = f"| memory | {resources['requests']['memory']} | {resources['limits']['memory']} |"
    assert cpu in section
    assert memory in section
    kustomization = (K8S / "base" / "kustomization.yaml").read_text()
    assert "- WORKERS=1" in kustomization
    assert "`WORKERS=1` per pod" in section


def test_the_metrics_section_lists_every_alert() -> None:
    section = _section("### Metrics: Prometheus and Grafana")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "llm-gateway-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            row = f"| `{rule['alert']}` | {rule['labels']['severity']} |"
            assert row in section, rule["alert"]
    assert "docker compose --profile observability up" in section


def test_the_files_it_points_to_exist() -> None:
    for path in re.findall(r"`((?:deploy|docs|policies|config|requirements)/[\w./-]+)`",
                           GUIDE.read_text()):  # fmt: skip
        target = Path(path.rstrip("/").split("*")[0])
        assert (REPO / target).exists() or (REPO / target.parent).is_dir(), path
