"""The embedded engine: decisions, fail-closed errors, threads and reloads."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from llm_gateway.policy import PolicyLoadError, PolicyService
from llm_gateway.policy.bundle import load_bundle, run_tests
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

# Two values for one complete rule when both hold: a conflict at evaluation, for
# inputs unlike the trial ones a policy must decide when it is loaded.
conflict := true if input.user.role == "admin"
conflict := false if input.request.model == "small"

# A string for one model only: loads, then denies that model's calls.
default bad_shape := false
bad_shape := "yes" if input.request.model == "x"
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


def test_a_conflict_at_evaluation_denies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy = _engine(tmp_path, "data.llm.authz.conflict")
    with caplog.at_level(logging.WARNING):
        decision = policy.decide_now(_input("admin", "free", "small"))  # both hold
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


# Parses, and evaluates on an empty input, but fails on every input the gateway sends:
# a user's tier is a string, and a string plus a number is a type error.
FAILS_ON_REAL_INPUTS = """package llm.authz
import rego.v1

default allow := false
allow if input.user.tier + 1 > 0
"""


def test_a_policy_that_fails_on_the_inputs_the_gateway_sends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="fails on a user's chat call"):
        load_bundle(_policy_dir(tmp_path, FAILS_ON_REAL_INPUTS), RULE)


def test_a_policy_whose_own_tests_fail_is_refused(tmp_path: Path) -> None:
    directory = _policy_dir(tmp_path)
    (directory / "rego" / "authz_test.rego").write_text(
        "package llm.authz_test\nimport rego.v1\nimport data.llm.authz\n"
        'test_passes if authz.allow with input as {"user": {"role": "admin"}}\n'
        'test_fails if authz.allow with input as {"user": {"role": "user", "tier": "none"}}\n'
    )
    with pytest.raises(PolicyLoadError, match=r"tests fail: rego/authz_test\.rego: test_fails"):
        load_bundle(directory, RULE)
    loaded = load_bundle(directory, RULE, with_tests=False)  # for `policy test` to report
    assert [t.name for t in run_tests(loaded) if t.problem] == ["test_fails"]


def test_a_reload_that_fails_its_trial_keeps_the_revision_and_says_why(tmp_path: Path) -> None:
    directory = _policy_dir(tmp_path)
    service = PolicyService(EmbeddedPolicy(load_bundle(directory, RULE), RULE), directory)
    first = service.revision
    _policy_dir(tmp_path, FAILS_ON_REAL_INPUTS)
    assert service.reload() is False
    assert service.revision == first
    assert service.reload_error is not None
    assert "fails on a user's chat call" in service.reload_error
    _policy_dir(tmp_path, models='{"free": ["small", "large"]}')
    assert service.reload() is True
    assert service.reload_error is None


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


# --- decisions kept by the input paths the policy reads -----------------------------------


def _counting(policy: EmbeddedPolicy) -> list[int]:
    """Count the evaluations ``policy`` makes (each asks for its thread's engine)."""
    calls: list[int] = []
    engine_of = policy._engine

    def counted(bundle: Any) -> Any:
        calls.append(1)
        return engine_of(bundle)

    policy._engine = counted  # type: ignore[method-assign]
    return calls


def _cached(tmp_path: Path, policy: str = POLICY, *, size: int = 100) -> EmbeddedPolicy:
    return EmbeddedPolicy(load_bundle(_policy_dir(tmp_path, policy), RULE), RULE, cache_size=size)


def test_inputs_that_differ_only_where_the_policy_does_not_read_share_a_decision(
    tmp_path: Path,
) -> None:
    policy = _cached(tmp_path)
    calls = _counting(policy)
    first = policy.decide_now({**_input("user", "free", "small"), "context": {"time": "t1"}})
    again = policy.decide_now({**_input("user", "free", "small"), "context": {"time": "t2"}})
    assert (first.allow, again.allow) == (True, True)
    assert len(calls) == 1
    denied = policy.decide_now(_input("user", "free", "large"))  # a path it reads differs
    assert denied.allow is False
    assert len(calls) == 2


def test_an_absent_path_and_a_null_one_are_decided_apart(tmp_path: Path) -> None:
    policy = _cached(tmp_path, "package llm.authz\nimport rego.v1\ndefault allow := false\n"
                     "allow if not input.flag\n")  # fmt: skip
    assert policy.decide_now({}).allow is True  # undefined: `not` holds
    assert policy.decide_now({"flag": None}).allow is False  # null is a value, not false


def test_a_policy_that_reads_the_clock_is_evaluated_every_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_gateway.policy.embedded")
    policy = _cached(tmp_path, "package llm.authz\nimport rego.v1\ndefault allow := false\n"
                     "allow if time.now_ns() > 0\n")  # fmt: skip
    calls = _counting(policy)
    assert [policy.decide_now({}).allow for _ in range(3)] == [True] * 3
    assert len(calls) == 3
    assert "evaluated every time: it calls time.now_ns()" in caplog.text


def test_failed_evaluations_are_not_kept(tmp_path: Path) -> None:
    policy = EmbeddedPolicy(load_bundle(_policy_dir(tmp_path), RULE), "data.llm.authz.conflict",
                            cache_size=100)  # fmt: skip
    calls = _counting(policy)
    conflicting = _input("admin", "free", "small")
    assert [policy.decide_now(conflicting).error is not None for _ in range(2)] == [True, True]
    assert len(calls) == 2


def test_a_reloaded_policy_starts_with_no_kept_decisions(tmp_path: Path) -> None:
    policy = _cached(tmp_path)
    assert policy.decide_now(_input("user", "free", "small")).allow is True
    policy.replace(load_bundle(_policy_dir(tmp_path, models='{"free": []}'), RULE))
    assert policy.decide_now(_input("user", "free", "small")).allow is False


def test_the_kept_decisions_are_bounded_and_size_zero_keeps_none(tmp_path: Path) -> None:
    policy = _cached(tmp_path, size=2)
    for model in ("a", "b", "c", "d"):
        policy.decide_now(_input("user", "free", model))
    assert len(policy._state[2]) == 2
    off = _cached(tmp_path / "off", size=0)
    calls = _counting(off)
    for _ in range(2):
        off.decide_now(_input("user", "free", "small"))
    assert len(calls) == 2


def test_kept_decisions_are_the_decisions_the_shipped_policy_makes(tmp_path: Path) -> None:
    """Every combination, decided twice by a caching engine and once by one that does
    not keep anything: the same answers, reasons and obligations."""
    repo = Path(__file__).resolve().parents[2] / "policies"
    bundle = load_bundle(repo, DECISION)
    cached = EmbeddedPolicy(bundle, DECISION, cache_size=10_000)
    fresh = EmbeddedPolicy(bundle, DECISION)
    documents: list[dict[str, Any]] = [
        {"action": action, "user": {"id": "u", "role": role, "tier": tier, "claims": {}},
         "request": {"model": model, "features": features, "scope": scope,
                     "estimated_tokens": tokens},
         "context": {"time": f"2026-12-07T10:00:0{tokens % 10}Z"}}
        for action in ("chat", "models.list", "usage.read", "admin.keys.create")
        for role in ("user", "admin", "auditor", "service")
        for tier in ("free", "premium", "enterprise", "nope")
        for model in ("demo", "gpt-4", "claude-sonnet")
        for features in ([], ["streaming"], ["tools", "json_output"])
        for scope in ("own", "tenant")
        for tokens in (3, 4)
    ]  # fmt: skip
    for document in documents * 2:
        got, want = cached.decide_now(document), fresh.decide_now(document)
        assert (got.allow, got.reasons, got.obligations, got.error) == (
            want.allow, want.reasons, want.obligations, want.error,
        ), document  # fmt: skip
    assert 0 < len(cached._state[2]) < len(documents)
