"""``llm-gateway policy eval`` and ``llm-gateway policy test``, run as real subprocesses.

Each test gets a copy of the shipped ``policies/`` directory (or a policy
directory of its own) through ``POLICY_DIR``, a working directory without a
``.env``, and an environment without any of the gateway's settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_gateway.policy.bundle import load_bundle
from llm_gateway.settings import settings_variables
from tests.policy.opa_server import OpaServer, Reply

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
DECISION_PATH = "/v1/data/llm/authz/decision"


@dataclass
class PolicyCli:
    tmp: Path
    env: dict[str, str]

    @property
    def policy_dir(self) -> Path:
        return Path(self.env["POLICY_DIR"])

    def __call__(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llm_gateway.cli", "policy", *args],
            env={**self.env, **env},
            cwd=self.tmp,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def eval(self, document: Any, **env: str) -> tuple[subprocess.CompletedProcess[str], Any]:
        """``policy eval --input file.json``: (the process, its decoded stdout or None)."""
        path = self.tmp / "input.json"
        path.write_text(json.dumps(document))
        done = self("eval", "--input", str(path), **env)
        return done, json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture
def cli(tmp_path: Path) -> PolicyCli:
    """The CLI on a copy of the shipped policy directory."""
    shutil.copytree(REPO_POLICIES, tmp_path / "policies")
    env = {k: v for k, v in os.environ.items() if k not in set(settings_variables())}
    env["POLICY_DIR"] = str(tmp_path / "policies")
    return PolicyCli(tmp_path, env)


def chat_input(role: str = "user", tier: str | None = "premium", model: str = "gpt-4",
               features: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "action": "chat",
        "user": {"id": "u-1", "role": role, "tier": tier, "groups": []},
        "request": {"endpoint": "openai", "model": model, "features": features or []},
        "context": {"client_ip": "10.0.0.1", "environment": "test"},
    }


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout


# --- policy eval --------------------------------------------------------------------


def test_eval_prints_an_allow_for_an_allowed_input(cli: PolicyCli) -> None:
    done, decision = cli.eval(chat_input(tier="premium", model="gpt-4"))
    assert done.returncode == 0, done.stderr
    assert decision["allow"] is True
    assert decision["error"] is None
    assert decision["revision"] == load_bundle(cli.policy_dir, "data.llm.authz.allow").revision
    assert set(decision) == {"allow", "reasons", "obligations", "revision", "error", "eval_us"}


def test_eval_prints_a_deny_and_still_exits_0(cli: PolicyCli) -> None:
    """A denial is an answer, not a failure of the command."""
    done, decision = cli.eval(chat_input(tier="free", model="gpt-4"))
    assert done.returncode == 0, done.stderr
    assert (decision["allow"], decision["error"]) == (False, None)


def test_eval_of_the_object_rule_prints_reasons_and_obligations(cli: PolicyCli) -> None:
    document = chat_input(tier="free", model="gpt-4", features=["tools"])
    done, decision = cli.eval(document, OPA_POLICY_PATH=DECISION_PATH)
    assert done.returncode == 0, done.stderr
    assert decision["allow"] is False
    assert set(decision["reasons"]) == {
        "model gpt-4 is not available to tier free",
        "feature tools is not available to tier free",
    }
    assert decision["obligations"]["features"] == ["streaming"]
    assert decision["obligations"]["deanonymize"] is False


def test_eval_reads_stdin_given_a_dash(cli: PolicyCli) -> None:
    done = cli("eval", "--input", "-", stdin=json.dumps(chat_input(role="admin", tier=None)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["allow"] is True


def test_eval_accepts_opas_input_envelope(cli: PolicyCli) -> None:
    """Unopened, the envelope would have no ``user`` and be denied."""
    done, decision = cli.eval({"input": chat_input(tier="premium")})
    assert done.returncode == 0, done.stderr
    assert decision["allow"] is True


def test_eval_of_a_missing_file_exits_2_naming_it(cli: PolicyCli) -> None:
    missing = cli.tmp / "no-such-input.json"
    done = cli("eval", "--input", str(missing))
    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert done.stdout == ""
    no_traceback(done)


def test_eval_of_text_that_is_not_json_exits_2(cli: PolicyCli) -> None:
    done = cli("eval", "--input", "-", stdin="{not json")
    assert done.returncode == 2
    assert "cannot read a JSON input document" in done.stderr
    no_traceback(done)


@pytest.mark.parametrize("document", [[1, 2], "admin", 42, None], ids=repr)
def test_eval_of_a_document_that_is_not_an_object_exits_2(cli: PolicyCli, document: Any) -> None:
    done, _ = cli.eval(document)
    assert done.returncode == 2
    assert "must be a JSON object" in done.stderr
    no_traceback(done)


@pytest.mark.parametrize("inner", [[1, 2], None], ids=repr)
def test_eval_of_an_envelope_whose_input_is_not_an_object_exits_2(
    cli: PolicyCli, inner: Any
) -> None:
    """``{"input": [1, 2]}`` is as wrong as ``[1, 2]``; it must not be evaluated as is."""
    done, _ = cli.eval({"input": inner})
    assert done.returncode == 2
    assert "must be a JSON object" in done.stderr


def test_eval_with_a_broken_policy_exits_2_naming_the_file(cli: PolicyCli) -> None:
    (cli.policy_dir / "rego" / "authz.rego").write_text("package llm.authz\nallow if {\n")
    done, _ = cli.eval(chat_input())
    assert done.returncode == 2
    assert "rego/authz.rego" in done.stderr
    no_traceback(done)


def test_eval_with_a_policy_that_errs_prints_the_error_and_exits_1(cli: PolicyCli) -> None:
    (cli.policy_dir / "rego" / "authz_test.rego").unlink()
    (cli.policy_dir / "rego" / "authz.rego").write_text(
        "package llm.authz\nimport rego.v1\n"
        'allow := true if input.user.role == "user"\n'
        'allow := false if input.request.model == "gpt-4"\n'  # no trial input asks for it
    )
    done, decision = cli.eval(chat_input(model="gpt-4"))
    assert done.returncode == 1
    assert decision["allow"] is False
    assert decision["error"]


@pytest.fixture
def opa() -> Iterator[OpaServer]:
    server = OpaServer().start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def test_eval_asks_opa_when_opa_url_is_set(cli: PolicyCli, opa: OpaServer) -> None:
    opa.answer(Reply.result({"allow": True, "max_tokens": 99}))
    done, decision = cli.eval(chat_input(), OPA_URL=opa.url, OPA_POLICY_PATH=DECISION_PATH)
    assert done.returncode == 0, done.stderr
    assert (decision["allow"], decision["obligations"]["max_tokens"]) == (True, 99)
    assert decision["revision"] == f"opa:{DECISION_PATH}"
    assert [r.body for r in opa.requests] == [{"input": chat_input()}]


# --- policy test --------------------------------------------------------------------

POLICY = """package llm.authz
import rego.v1

default allow := false
allow if input.user.role == "admin"
"""
PASSING_TESTS = """package llm.authz_test
import rego.v1

test_admin_allowed if data.llm.authz.allow with input as {"user": {"role": "admin"}}

test_user_denied if {
	not data.llm.authz.allow with input as {"user": {"role": "user"}}
}
"""
FAILING_TESTS = """package llm.more_test
import rego.v1

test_still_passes if data.llm.authz.allow with input as {"user": {"role": "admin"}}

test_false if data.llm.authz.allow with input as {"user": {"role": "user"}}

test_undefined if input.never_set == 1
"""


@pytest.fixture
def own_policy(tmp_path: Path) -> PolicyCli:
    """The CLI on a small policy of the test's own (no tests yet)."""
    policies = tmp_path / "own"
    (policies / "rego").mkdir(parents=True)
    (policies / "rego" / "authz.rego").write_text(POLICY)
    env = {k: v for k, v in os.environ.items() if k not in set(settings_variables())}
    env["POLICY_DIR"] = str(policies)
    return PolicyCli(tmp_path, env)


def result_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]


def test_policy_test_passes_when_every_test_rule_is_true(own_policy: PolicyCli) -> None:
    (own_policy.policy_dir / "rego" / "authz_test.rego").write_text(PASSING_TESTS)
    done = own_policy("test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result_lines(done) == [
        "PASS rego/authz_test.rego: test_admin_allowed",
        "PASS rego/authz_test.rego: test_user_denied",
    ]
    assert "2 passed, 0 failed" in done.stdout


def test_policy_test_fails_on_a_false_or_undefined_test_rule(own_policy: PolicyCli) -> None:
    rego = own_policy.policy_dir / "rego"
    (rego / "authz_test.rego").write_text(PASSING_TESTS)
    (rego / "more_test.rego").write_text(FAILING_TESTS)
    done = own_policy("test")
    assert done.returncode == 1
    lines = result_lines(done)
    assert "PASS rego/more_test.rego: test_still_passes" in lines
    assert "FAIL rego/more_test.rego: test_false (false or undefined)" in lines
    assert "FAIL rego/more_test.rego: test_undefined (false or undefined)" in lines
    assert "PASS rego/authz_test.rego: test_admin_allowed" in lines
    assert "3 passed, 2 failed" in done.stdout


def test_policy_test_without_test_files_fails(own_policy: PolicyCli) -> None:
    done = own_policy("test")
    assert done.returncode == 1
    assert "no *_test.rego files" in done.stderr


def test_policy_test_with_a_broken_test_file_exits_2(own_policy: PolicyCli) -> None:
    (own_policy.policy_dir / "rego" / "authz_test.rego").write_text("package x_test\ntest_a if {")
    done = own_policy("test")
    assert done.returncode == 2
    assert "rego/authz_test.rego" in done.stderr
    no_traceback(done)


def test_the_shipped_policy_passes_its_own_tests(cli: PolicyCli) -> None:
    done = cli("test")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = result_lines(done)
    assert len(lines) >= 20
    assert all(line.startswith("PASS rego/authz_test.rego: test_") for line in lines), lines


def test_the_shipped_tests_catch_a_policy_that_lets_free_users_call_gpt_4(cli: PolicyCli) -> None:
    """The shipped tests are not vacuous: widen the free tier and they fail."""
    access = cli.policy_dir / "data" / "access.yaml"
    free = "[demo, ollama-local, auto]"
    widened = access.read_text().replace(free, "[demo, ollama-local, auto, gpt-4]", 1)
    assert widened != access.read_text()
    access.write_text(widened)
    done = cli("test")
    assert done.returncode == 1
    assert "FAIL rego/authz_test.rego: test_free_tier_may_not_call_premium_models" in done.stdout
