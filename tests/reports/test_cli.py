"""``llm-gateway report compliance``: reads the database directly and writes each form,
chosen by ``--out``'s extension (or ``--format``); a tenant's report is its rows only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_modules
from tests.e2e.test_audit_postgres import cli_env
from tests.harness import run_cli
from tests.reports.seed import END, START, seed_sync

PERIOD = ["--from", START.isoformat(), "--to", END.isoformat()]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report-cli')}/gateway.db"
    seed_sync(url)
    return url


def report(database: str, cwd: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli(["report", "compliance", *PERIOD, *args], cli_env(database), cwd)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    ("name", "magic"), [("r.json", b"{"), ("r.html", b"<!doctype html>"), ("r.pdf", b"%PDF-")]
)
def test_each_form_is_written_by_its_extension(
    database: str, tmp_path: Path, name: str, magic: bytes
) -> None:
    require_modules("jinja2", "reportlab", extra="reports")
    code, _, err = report(database, tmp_path, "--framework", "hipaa", "--tenant", "acme",
                          "--out", str(tmp_path / name))  # fmt: skip
    assert code == 0, err
    assert (tmp_path / name).read_bytes().startswith(magic)
    assert "HIPAA Security Rule:" in err
    assert "164.312(b) evidenced" in err


def test_a_tenants_json_report_on_stdout(database: str, tmp_path: Path) -> None:
    code, out, err = report(database, tmp_path, "--framework", "soc2", "--tenant", "globex")
    assert code == 0, err
    body = json.loads(out)
    assert (body["framework"], body["tenant"], body["all_tenants"]) == ("soc2", "globex", False)
    assert body["requests"] == 6
    everyone = json.loads(report(database, tmp_path, "--framework", "soc2")[1])
    assert everyone["all_tenants"] is True
    assert everyone["requests"] > body["requests"]
    assert everyone["integrity"]["chains"] == 3


def test_format_overrides_the_extension(database: str, tmp_path: Path) -> None:
    require_modules("jinja2", extra="reports")
    out = tmp_path / "report.txt"
    code, _, err = report(database, tmp_path, "--framework", "gdpr", "--format", "html",
                          "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "Art. 5(1)(c)" in out.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--framework", "gdpr", "--out", "report.docx"], "name a .json, .html or .pdf file"),
        (["--framework", "gdpr", "--from", "soon"], "expected an ISO 8601 date"),
        (["--framework", "gdpr", "--from", "2026-03-02", "--to", "2026-03-01"], "later than"),
    ],
)
def test_bad_options_exit_1_saying_why(
    database: str, tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_cli(["report", "compliance", *args], cli_env(database), tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "report.docx").exists()


def test_an_unknown_framework_is_a_usage_error(database: str, tmp_path: Path) -> None:
    done = run_cli(["report", "compliance", "--framework", "pci"], cli_env(database), tmp_path)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
