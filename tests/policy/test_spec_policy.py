"""The specification's policy, verbatim (Rego v0), and its v1 rewrite decide alike.

And the trap found while measuring regorus: in v0 mode it reads v1 text
(``allow if {...}`` without an import) as a rule named ``if`` and allows
everything. The loader parses as v1 first, so that cannot happen to us.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import regorus

from llm_gateway.policy.bundle import load_bundle
from llm_gateway.policy.embedded import EmbeddedPolicy

FIXTURES = Path(__file__).parent / "fixtures"
RULE = "data.llm.authz.allow"


def _input(role: str | None, tier: str | None, model: str | None) -> dict[str, Any]:
    return {"user": {"role": role, "tier": tier}, "request": {"model": model}}


#: (role, tier, model) -> the decision the specification's policy gives.
CASES = [
    ("admin", None, "anything", True),
    ("admin", "free", "gpt-4", True),
    ("user", "premium", "claude-3-sonnet", True),
    ("user", "premium", "gpt-4", False),
    ("user", "enterprise", "gpt-4", True),
    ("user", "enterprise", "claude-3-sonnet", False),
    ("user", "free", "claude-3-sonnet", False),
    ("user", None, "gpt-4", False),
    ("service", "enterprise", "gpt-4", False),
    ("guest", "premium", "claude-3-sonnet", False),
    (None, None, None, False),
    ("ADMIN", None, "gpt-4", False),  # roles are case-sensitive
]


def _policy_dir(tmp_path: Path, fixture: str) -> Path:
    (tmp_path / "rego").mkdir(parents=True)
    shutil.copy(FIXTURES / fixture, tmp_path / "rego" / "authz.rego")
    return tmp_path


@pytest.fixture(params=["spec_authz_v0.rego", "spec_authz_v1.rego"])
def policy(request: pytest.FixtureRequest, tmp_path: Path) -> EmbeddedPolicy:
    return EmbeddedPolicy(load_bundle(_policy_dir(tmp_path, request.param), RULE), RULE)


@pytest.mark.parametrize(("role", "tier", "model", "expected"), CASES)
def test_spec_policy_decisions(
    policy: EmbeddedPolicy, role: str | None, tier: str | None, model: str | None, expected: bool
) -> None:
    decision = policy.decide_now(_input(role, tier, model))
    assert decision.error is None
    assert decision.allow is expected


def test_v0_text_is_loaded_as_v0_and_v1_text_as_v1(tmp_path: Path) -> None:
    v0 = load_bundle(_policy_dir(tmp_path / "a", "spec_authz_v0.rego"), RULE)
    v1 = load_bundle(_policy_dir(tmp_path / "b", "spec_authz_v1.rego"), RULE)
    assert [m.v0 for m in v0.modules] == [True]
    assert [m.v0 for m in v1.modules] == [False]


def test_the_v1_text_in_v0_mode_trap_is_real_in_regorus() -> None:
    """Why the loader tries v1 first: regorus in v0 mode mis-reads v1 text and allows all.

    Through the loader, the same text decides every case of CASES correctly: that
    is the v1 half of ``test_spec_policy_decisions``.
    """
    engine = regorus.Engine()
    engine.set_rego_v0(True)
    engine.add_policy("authz.rego", (FIXTURES / "spec_authz_v1.rego").read_text())
    engine.set_input(_input("guest", None, "gpt-4"))
    assert engine.eval_rule(RULE) is True  # wrong: nobody should be allowed
