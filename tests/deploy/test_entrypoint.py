"""deploy/docker-entrypoint.sh, run for real with a fake `llm-gateway` on PATH that
records each call's arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY

SCRIPT = DEPLOY / "docker-entrypoint.sh"

FAKE = """#!/bin/sh
echo "$*" >> "$CALLS"
[ "$*" = "db upgrade" ] && [ -n "${FAIL_UPGRADE:-}" ] && exit 3
exit 0
"""


def _run(
    tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "llm-gateway"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), **env}
    result = subprocess.run(
        [str(SCRIPT), *args], env=environment, capture_output=True, text=True, check=False
    )
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return result, recorded


def test_the_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)


def test_no_arguments_serve_without_migrating(tmp_path: Path) -> None:
    result, calls = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == ["serve"]


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_migrate_on_start_upgrades_then_serves(tmp_path: Path, value: str) -> None:
    result, calls = _run(tmp_path, MIGRATE_ON_START=value)
    assert result.returncode == 0, result.stderr
    assert calls == ["db upgrade", "serve"]


@pytest.mark.parametrize("value", ["false", "0", "", "off"])
def test_migrate_on_start_false_does_not_migrate(tmp_path: Path, value: str) -> None:
    _, calls = _run(tmp_path, MIGRATE_ON_START=value)
    assert calls == ["serve"]


def test_a_failed_migration_stops_before_serving(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, MIGRATE_ON_START="true", FAIL_UPGRADE="1")
    assert result.returncode == 3
    assert calls == ["db upgrade"]


def test_an_unknown_migrate_value_is_refused(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, MIGRATE_ON_START="maybe")
    assert result.returncode == 64
    assert "MIGRATE_ON_START='maybe'" in result.stderr
    assert calls == []


def test_workers_is_passed_to_serve_before_extra_arguments(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, "serve", "--port", "9000", WORKERS="4")
    assert result.returncode == 0, result.stderr
    assert calls == ["serve --workers 4 --port 9000"]


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5", "04"])
def test_bad_workers_are_refused(tmp_path: Path, value: str) -> None:
    result, calls = _run(tmp_path, WORKERS=value)
    assert result.returncode == 64
    assert f"WORKERS='{value}'" in result.stderr
    assert calls == []


def test_other_commands_go_to_llm_gateway_unchanged(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, "db", "upgrade", MIGRATE_ON_START="true", WORKERS="2")
    assert result.returncode == 0, result.stderr
    assert calls == ["db upgrade"]


def test_serve_replaces_the_shell(tmp_path: Path) -> None:
    """exec: the server is PID 1's replacement, so it receives SIGTERM itself."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "llm-gateway"
    fake.write_text('#!/bin/sh\necho "$$" > "$CALLS"\n')
    fake.chmod(0o755)
    calls = tmp_path / "pid"
    process = subprocess.Popen(
        [str(SCRIPT)], env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)}
    )
    assert process.wait(timeout=10) == 0
    assert calls.read_text().strip() == str(process.pid)
