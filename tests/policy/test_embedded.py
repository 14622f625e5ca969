"""The embedded engine: decisions, fail-closed errors, threads and reloads."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from llm_gateway.policy import PolicyService
from llm_gateway.policy.bundle import load_bundle
from llm_gateway.policy.embedded import EmbeddedPolicy

RULE = "data.llm.authz.allow"
DECISION = "data.llm.authz.decision"

POLICY = """package llm.authz
import rego.v1

allow if input.user.role == "admin"
allow if input.request.model in data.models[input.user.tier]

decision := {"allow": allow, "reasons": reasons, "max_tokens": 100}
reasons contains "not for your tier" if not allow
default allow := false

# Two values for one complete rule when both hold: a conflict at evaluation.
conflict := 1 if input.user.role == "admin"
conflict := 2 if input.user.tier == "free"

bad_shape := "yes"
"""


def _policy_dir(root: Path, policy: str = POLICY, models: str = '{"free": ["small"]}') -> Path:
    (root / "rego").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "rego" / "authz.rego").write_text(policy)
    (root / "data" / "models.json").write_text(f'{{"models": {models}}}')
    return root


def _input(role: str, tier: str, model: str) -> dict[str, Any]:
    return {"user": {"role": role, "tier": tier}, "request": {"model": model}}


def _engine(tmp_path: Path, rule: str = RULE) -> EmbeddedPolicy:
    return EmbeddedPolicy(load_bundle(_policy_dir(tmp_path), rule), rule)


def test_a_boolean_decision(tmp_path: Path) -> None:
    policy = _engine(tmp_path)
    allowed = policy.decide_now(_input("user", "free", "small"))
    denied = policy.decide_now(_input("user", "free", "large"))
    assert (allowed.allow, denied.allow) == (True, False)
    assert allowed.revision == policy.revision
    assert allowed.eval_us > 0


def test_an_object_decision_with_obligations(tmp_path: Path) -> None:
    policy = _engine(tmp_path, DECISION)
    denied = policy.decide_now(_input("user", "free", "large"))
    assert denied.allow is False
    assert denied.reasons == ("not for your tier",)
    allowed = policy.decide_now(_input("admin", "free", "large"))
    assert allowed.allow is True
    assert allowed.obligations.max_tokens == 100


def test_a_conflict_at_evaluation_denies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = _engine(tmp_path, "data.llm.authz.conflict")
    with caplog.at_level(logging.WARNING):
        decision = policy.decide_now(_input("admin", "free", "small"))
    assert decision.allow is False
    assert decision.error is not None
    assert "conflict" in decision.error
    assert policy.revision in caplog.text


def test_a_decision_of_the_wrong_shape_denies(tmp_path: Path) -> None:
    decision = _engine(tmp_path, "data.llm.authz.bad_shape").decide_now(
        _input("admin", "free", "x")
    )
    assert decision.allow is False
    assert decision.error is not None
    assert "boolean or an object" in decision.error


def test_decisions_from_several_threads_at_once(tmp_path: Path) -> None:
    """Each thread gets its own engine (a regorus engine panics if used from another)."""
    policy = _engine(tmp_path)
    cases = [
        (_input("user", "free", "small"), True),
        (_input("user", "free", "large"), False),
        (_input("admin", "none", "large"), True),
        (_input("user", "paid", "small"), False),
    ]
    wrong: list[str] = []
    errors: list[str] = []
    start = threading.Barrier(8)

    def work(offset: int) -> None:
        start.wait()
        for i in range(400):
            document, expected = cases[(i + offset) % len(cases)]
            decision = policy.decide_now(document)
            if decision.error:
                errors.append(decision.error)
            elif decision.allow is not expected:
                wrong.append(f"{document} -> {decision.allow}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert wrong == []


def test_reload_takes_a_good_policy_and_keeps_the_old_one_on_a_bad_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _policy_dir(tmp_path)
    service = PolicyService(EmbeddedPolicy(load_bundle(directory, RULE), RULE), directory)
    engine = service.engine
    assert isinstance(engine, EmbeddedPolicy)
    first = service.revision
    assert not engine.decide_now(_input("user", "free", "large")).allow

    _policy_dir(tmp_path, models='{"free": ["small", "large"]}')
    assert service.reload() is True
    assert service.revision != first
    assert engine.decide_now(_input("user", "free", "large")).allow

    second = service.revision
    (directory / "rego" / "broken.rego").write_text("package broken\nallow if {\n")
    with caplog.at_level(logging.ERROR):
        assert service.reload() is False
    assert service.revision == second
    assert "broken.rego" in caplog.text
    assert engine.decide_now(_input("user", "free", "large")).allow


async def test_the_watcher_reloads_changed_files(tmp_path: Path) -> None:
    import asyncio

    directory = _policy_dir(tmp_path)
    service = PolicyService(EmbeddedPolicy(load_bundle(directory, RULE), RULE), directory)
    service.start(0.05)
    try:
        first = service.revision
        _policy_dir(tmp_path, models='{"free": ["small", "large"]}')
        for _ in range(100):
            await asyncio.sleep(0.02)
            if service.revision != first:
                break
        assert service.revision != first
        assert (await service.decide(_input("user", "free", "large"))).allow
    finally:
        await service.aclose()
