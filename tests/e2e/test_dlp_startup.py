"""DLP configuration at start-up, and a detector that fails: the gateway refuses, loudly.

* A bad custom rule stops ``llm-gateway serve`` (and should fail ``check-config``
  and ``dlp scan``) with a message naming the file, the rule and the problem.
* With the NER detector required (``DLP_NER=on``) and a budget it cannot keep
  (``DLP_NER_TIMEOUT_MS=1``), a request passes with what NER read, the rule
  engine's findings applied and the audit row saying ``ner: partial|skipped
  (time budget)``; where the policy says ``ner_partial: block`` it fails closed
  with 503 ``dlp_unavailable``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.settings import settings_variables
from tests.e2e.conftest import (
    ACCESS_YAML,
    JWT_SECRET,
    PRICING_YAML,
    Gateway,
    free_port,
    routing_yaml,
    write_policies,
)
from tests.e2e.dlp_support import (
    DOORS,
    SPEC_RULES,
    SSN,
    ask,
    dlp_gateway,
    tag,
    upstream_requests,
)
from tests.harness import run_cli

# --- 8. bad rules ----------------------------------------------------------------


def rule(name: str, pattern: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    pattern: '{pattern}'\n    action: block\n"
        f"    severity: high\n{extra}"
    )


#: case -> (rules file, the rule it must name, what it must say about it)
BAD_RULES: dict[str, tuple[str, str, str]] = {
    "lookahead": (rule("look_ahead", r"secret(?=\d+)"), "look_ahead", "lookahead (?=...)"),
    "negative_lookbehind": (
        rule("look_behind", r"(?<!x)\d{6}"),
        "look_behind",
        "negative lookbehind (?<!...)",
    ),
    "backreference": (rule("twice", r"(\w+) \1"), "twice", "back-reference \\1"),
    "named_backreference": (rule("named", r"(?P<w>\w+) (?P=w)"), "named", "back-reference"),
    "invalid_regex": (rule("broken", r"abc[unclosed"), "broken", "invalid RE2 pattern"),
    "unknown_validator": (
        rule("checked", r"abc\d+", "    validator: nosuch\n"),
        "checked",
        "unknown validator 'nosuch'",
    ),
    "unknown_action": (
        rule("acting", r"abc\d+").replace("action: block", "action: explode"),
        "acting",
        "explode",
    ),
    "duplicate_name": (rule("same", r"abc\d+") + rule("same", r"xyz\d+"), "same", "duplicate name"),
    "builtin_name": (rule("pii.us_ssn", r"abc\d+"), "pii.us_ssn", "already used by a built-in"),
}
# A valid rule first, so that the problem is never "line 1" by accident.
PREAMBLE = "rules:\n" + rule("fine", r"fine\d{4}")


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    rules: Path


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment with none of the gateway's settings but this test's directories."""
    env = {k: v for k, v in os.environ.items() if k not in set(settings_variables())}
    env.update(
        CONFIG_DIR=str(tmp / "config"),
        DATA_DIR=str(tmp / "data"),
        POLICY_DIR=str(tmp / "policies"),
        JWT_SECRET=JWT_SECRET,
        DEMO_MODEL="off",
        DLP_NER="off",
        **extra,
    )
    return env


def bad_config(tmp: Path, case: str) -> Path:
    config = tmp / "config"
    config.mkdir(parents=True)
    (config / "routing_policies.yaml").write_text(routing_yaml("http://127.0.0.1:9"))
    (config / "pricing.yaml").write_text(PRICING_YAML)
    write_policies(tmp / "policies")
    rules = config / "dlp_rules.yaml"
    rules.write_text(PREAMBLE + BAD_RULES[case][0])
    return rules


def run_in_process(tmp: Path, case: str, *args: str) -> Run:
    """``llm-gateway ARGS`` (a command that returns: ``check-config``, ``dlp scan``) with the
    bad rules of ``case``, in-process (``tests/harness.py``); stdout then stderr."""
    rules = bad_config(tmp, case)
    done = run_cli(args, cli_env(tmp), tmp)
    return Run(done.returncode, done.stdout + done.stderr, rules)


def run(tmp: Path, case: str, *args: str, timeout: float = 60) -> Run:
    """``llm-gateway ARGS`` as a process, with the bad rules of ``case``; a process that
    keeps running (a gateway that started despite them) is stopped after ``timeout`` s."""
    rules = bad_config(tmp, case)
    env = cli_env(tmp, API_PORT=str(free_port()))
    with subprocess.Popen(
        [sys.executable, "-m", "llm_gateway.cli", *args],
        env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as process:  # fmt: skip
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            return Run(-1, output.decode(errors="replace"), rules)
    return Run(process.returncode, output.decode(errors="replace"), rules)


@pytest.fixture(scope="module")
def serve_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """``llm-gateway serve`` once per bad rules file, in-process: it must return before it
    listens (``tests/harness.py``: a ``serve`` that would listen returns 0 instead)."""
    return {
        case: run_in_process(tmp_path_factory.mktemp(f"serve-{case}"), case, "serve")
        for case in BAD_RULES
    }


def test_serve_process_exits_2_at_start_up_on_a_bad_rule(tmp_path: Path) -> None:
    """The same, as the process an operator starts: its exit status, before uvicorn starts."""
    result = run(tmp_path, "lookahead", "serve")
    assert result.returncode == 2, result.output[-2000:]
    assert "Application startup complete" not in result.output
    assert "Traceback" not in result.output
    assert_names_file_rule_and_problem(result, "lookahead")


def assert_names_file_rule_and_problem(result: Run, case: str) -> None:
    """The message as printed, or as a JSON log line escapes it."""
    _, name, problem = BAD_RULES[case]
    for expected in (str(result.rules), f"rule '{name}'", problem):
        escaped = json.dumps(expected)[1:-1]
        assert expected in result.output or escaped in result.output, (
            f"{expected!r} is missing from:\n{result.output[-2000:]}"
        )


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_gateway_exits_at_start_up_naming_file_rule_and_problem(
    serve_runs: dict[str, Run], case: str
) -> None:
    result = serve_runs[case]
    assert result.returncode > 0, f"the gateway did not exit:\n{result.output[-2000:]}"
    assert "Application startup complete" not in result.output
    assert_names_file_rule_and_problem(result, case)


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_gateway_start_up_error_for_a_bad_rule_is_a_clean_config_error(
    serve_runs: dict[str, Run], case: str
) -> None:
    """Like a bad routing file: exit code 2 and an "error: invalid ..." message, before
    uvicorn starts, without a traceback through the ASGI lifespan."""
    result = serve_runs[case]
    assert "Traceback" not in result.output, result.output[-3000:]
    assert result.returncode == 2, result.output[-2000:]
    assert "error: invalid" in result.output


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_check_config_rejects_a_bad_rule(tmp_path: Path, case: str) -> None:
    result = run_in_process(tmp_path, case, "check-config")
    assert result.returncode == 2, f"check-config accepted bad DLP rules:\n{result.output}"
    assert "Traceback" not in result.output
    assert_names_file_rule_and_problem(result, case)


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_dlp_scan_command_rejects_a_bad_rule(tmp_path: Path, case: str) -> None:
    result = run_in_process(tmp_path, case, "dlp", "scan", str(Path(__file__)))
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    assert_names_file_rule_and_problem(result, case)


def test_check_config_accepts_the_specification_rules(tmp_path: Path) -> None:
    rules = bad_config(tmp_path, "lookahead")
    rules.write_text(SPEC_RULES.read_text())
    done = run_cli(["check-config"], cli_env(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert str(rules) in done.stdout  # named among the files it checked


# --- 9. fail closed --------------------------------------------------------------

NER_OVER_BUDGET = {
    "DLP_NER": "on",
    "DLP_NER_TIMEOUT_MS": "1",
    "DLP_NER_TIMEOUT_PER_KCHAR_MS": "0",
    "OPA_POLICY_PATH": "/v1/data/llm/authz/decision",
}
#: The test tiers, the premium tier (the test tokens') refusing what NER could not read.
STRICT_NER_ACCESS = ACCESS_YAML.replace(
    "features: [streaming, tools, json_output]\n",
    "features: [streaming, tools, json_output]\n      ner_partial: block\n",
    1,
)
#: Enough text that the model needs far more than 1 ms: names and places, and an SSN
#: for the rule engine, which does not depend on NER.
NAMES = " ".join(
    f"Dear {first} {last}, your order ships from {city} on Monday."
    for first, last, city in [
        ("John", "Smith", "Paris"),
        ("Maria", "Garcia", "Madrid"),
        ("Hiroshi", "Tanaka", "Osaka"),
        ("Amelia", "Brown", "Chicago"),
    ]
    * 20
)
UNAVAILABLE_TYPE = {
    "openai": "service_unavailable_error",
    "anthropic": "overloaded_error",
    "native": "unavailable",
}


@pytest.fixture(scope="module")
def closed_gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    assert "ner_partial: block" in STRICT_NER_ACCESS
    with dlp_gateway(
        tmp_path_factory, emulator, "dlp-ner-closed", NER_OVER_BUDGET, access=STRICT_NER_ACCESS
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def open_gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with dlp_gateway(tmp_path_factory, emulator, "dlp-ner-open", NER_OVER_BUDGET) as gateway:
        yield gateway


def test_ner_gateway_is_ready_within_the_harness_wait(closed_gw: Gateway) -> None:
    """start_gateway waits 30 s for the gateway to listen; by then the model is loaded
    (how long that takes is measured in bench/dlp_speed.py, not here)."""
    checks = httpx.get(f"{closed_gw.base_url}/ready", timeout=5).json()["checks"]
    assert (checks["dlp"], checks["ner"]) == ("on", "available")


@pytest.mark.parametrize("door", DOORS)
def test_detector_over_its_budget_fails_closed_where_the_policy_says_so(
    closed_gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    reply = ask(closed_gw, door, f"{marker} {NAMES} SSN {SSN}")
    assert reply.status == 503, reply.body
    error = reply.error(door)
    assert (error["code"], error["type"]) == ("dlp_unavailable", UNAVAILABLE_TYPE[door])
    assert "John" not in reply.body
    assert SSN not in reply.body
    assert upstream_requests(emulator, marker) == []

    row = closed_gw.audit_row(reply.request_id)
    assert (row.status, row.error_code, row.endpoint) == (503, "dlp_unavailable", door)
    assert (row.model, row.tokens_used) == (None, 0)
    assert row.dlp_ner in ("partial (time budget)", "skipped (time budget)")


def test_scan_api_fails_closed_when_the_detector_overruns_and_the_policy_says_block(
    closed_gw: Gateway,
) -> None:
    with closed_gw.http() as http:
        response = http.post(
            "/api/v1/dlp/scan",
            json={"text": NAMES},
            headers={"authorization": f"Bearer {closed_gw.token()}"},
        )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "dlp_unavailable"
    assert "findings" not in response.json()  # never an empty, "clean" answer


@pytest.mark.parametrize("door", DOORS)
def test_detector_over_its_budget_passes_with_what_it_read(
    open_gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    reply = ask(open_gw, door, f"{marker} {NAMES} SSN {SSN}")
    assert reply.status == 200, reply.body
    [sent] = upstream_requests(emulator, marker)
    body = json.dumps(sent["body"])
    assert SSN not in body  # the rule engine's redactions still apply
    assert "<SSN_REDACTED>" in body
    row = open_gw.audit_row(reply.request_id)
    assert row.status == 200
    assert row.dlp_ner in ("partial (time budget)", "skipped (time budget)")  # never silent


def test_scan_api_says_how_much_ner_read(open_gw: Gateway) -> None:
    with open_gw.http() as http:
        response = http.post(
            "/api/v1/dlp/scan",
            json={"text": f"{NAMES} SSN {SSN}"},
            headers={"authorization": f"Bearer {open_gw.token()}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ner"] in ("partial (time budget)", "skipped (time budget)")
    assert "US_SSN" in {f["entity"] for f in body["findings"]}


# --- 10. DLP switched off ----------------------------------------------------------


@pytest.fixture(scope="module")
def off_gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with dlp_gateway(tmp_path_factory, emulator, "dlp-off", {"DLP_ENABLED": "false"}) as gateway:
        yield gateway


def test_ready_reports_dlp_off_when_disabled(off_gw: Gateway) -> None:
    checks = httpx.get(f"{off_gw.base_url}/ready", timeout=5).json()["checks"]
    assert (checks["dlp"], checks["ner"]) == ("off", "off")


def test_disabled_dlp_forwards_the_prompt_unchanged(
    off_gw: Gateway, emulator: EmulatorServer
) -> None:
    marker = tag()
    reply = ask(off_gw, "native", f"{marker} ssn {SSN}")
    assert reply.status == 200
    assert f"{marker} ssn {SSN}" in json.dumps(upstream_requests(emulator, marker)[0]["body"])
    assert reply.data["metadata"]["pii_detected"] is False
    assert off_gw.audit_row(reply.request_id).dlp_action is None


def test_scan_api_says_dlp_is_off_when_disabled(off_gw: Gateway) -> None:
    with off_gw.http() as http:
        response = http.post(
            "/api/v1/dlp/scan",
            json={"text": f"ssn {SSN}"},
            headers={"authorization": f"Bearer {off_gw.token()}"},
        )
    assert response.status_code == 503, response.text
    assert "DLP_ENABLED" in response.json()["error"]["message"]
    assert SSN not in response.text
