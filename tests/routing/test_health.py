"""The health checker's down and up transitions, driven sweep by sweep at chosen times.

``check_once(now)`` is the whole of the checker's logic; the background task
only calls it on a timer, so the transitions are asserted without sleeping
and the task is checked for starting and stopping only.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from llm_gateway.errors import UpstreamStatusError, UpstreamUnreachable
from llm_gateway.routing.health import (
    Check,
    HealthChecker,
    HealthTransition,
    ModelHealth,
    error_code,
)


class Probe:
    """A probe whose models fail while they are in ``failing``; it notes every call."""

    def __init__(self) -> None:
        self.failing: dict[str, Exception] = {}
        self.calls: list[str] = []
        self.called = asyncio.Event()

    async def __call__(self, name: str) -> None:
        self.calls.append(name)
        self.called.set()
        if name in self.failing:
            raise self.failing[name]


def checker(probe: Probe, **checks: Check) -> HealthChecker:
    return HealthChecker(checks or {"a": Check(10, 3), "b": Check(10, 3)}, probe, clock=lambda: 0)


async def test_consecutive_failures_up_to_the_threshold_mark_a_model_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = Probe()
    seen: list[HealthTransition] = []
    health = HealthChecker({"a": Check(10, 3), "b": Check(10, 3)}, probe, on_transition=seen.append)
    probe.failing["a"] = UpstreamUnreachable("connection refused")
    assert await health.check_once(0) == []
    assert await health.check_once(10) == []
    assert health.health("a") == ModelHealth(True, 2, "upstream_unreachable", 10)
    down = HealthTransition("a", False, 20, "upstream_unreachable")
    assert await health.check_once(20) == [down]
    assert (health.is_up("a"), health.is_up("b")) == (False, True)
    assert await health.check_once(30) == []  # still down: no second transition
    assert health.health("a") == ModelHealth(False, 4, "upstream_unreachable", 30)
    assert seen == [down]
    logged = [r for r in caplog.records if r.name == "llm_gateway.routing.health"]
    assert [r.getMessage() for r in logged if r.levelno == logging.WARNING] == [
        "health check: model a is down after 3 failed checks (last error: upstream_unreachable)"
    ]


async def test_one_success_brings_a_model_back() -> None:
    probe = Probe()
    health = checker(probe, a=Check(10, failure_threshold=1))
    probe.failing["a"] = UpstreamStatusError("503 from upstream", upstream_status=503)
    assert [t.up for t in await health.check_once(0)] == [False]
    del probe.failing["a"]
    assert await health.check_once(10) == [HealthTransition("a", True, 10, None)]
    assert health.is_up("a")
    assert health.health("a") == ModelHealth(True, 0, "upstream_error", 10)  # kept: why it fell


async def test_a_success_starts_the_count_again() -> None:
    probe = Probe()
    health = checker(probe, a=Check(10, failure_threshold=3))
    for now, failing in enumerate([True, True, False, True, True]):
        if failing:
            probe.failing["a"] = RuntimeError("no")
        else:
            probe.failing.pop("a", None)
        assert await health.check_once(now * 10) == []
    assert health.health("a") == ModelHealth(True, 2, "RuntimeError", 40)


async def test_each_model_is_probed_on_its_own_interval() -> None:
    probe = Probe()
    health = checker(probe, fast=Check(interval_s=10), slow=Check(interval_s=30))
    for now in (0, 5, 10, 20, 30):
        await health.check_once(now)
    assert probe.calls == ["fast", "slow", "fast", "fast", "fast", "slow"]


async def test_models_without_checks_are_up_and_not_probed() -> None:
    probe = Probe()
    health = checker(probe, a=Check())
    await health.check_once(0)
    assert probe.calls == ["a"]
    assert health.is_up("unchecked")
    assert health.health("unchecked") is None
    assert set(health.snapshot()) == {"a"}


async def test_a_model_starts_up_and_unchecked() -> None:
    health = checker(Probe(), a=Check())
    assert health.health("a") == ModelHealth(up=True, consecutive_failures=0)
    assert health.is_up("a")


async def test_a_probe_that_hangs_fails_as_a_timeout() -> None:
    async def hangs(name: str) -> None:
        await asyncio.Event().wait()

    health = HealthChecker({"a": Check(failure_threshold=1, timeout_s=0.01)}, hangs)
    assert await health.check_once(0) == [HealthTransition("a", False, 0, "timeout")]


def test_error_codes_name_the_failure_never_its_message() -> None:
    class WithStatus(Exception):
        code = 503

    assert error_code(TimeoutError()) == "timeout"
    assert error_code(UpstreamUnreachable("https://user:secret@host refused")) == (
        "upstream_unreachable"
    )
    assert error_code(WithStatus("body: secret")) == "503"
    assert error_code(OSError("https://user:secret@host")) == "OSError"


@pytest.mark.parametrize("check", [{"interval_s": 0}, {"timeout_s": -1}, {"failure_threshold": 0}])
def test_checks_that_cannot_work_are_refused(check: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Check(**check)  # type: ignore[arg-type]


# --- the background task ----------------------------------------------------------------


async def test_the_task_probes_at_once_and_stop_cancels_it() -> None:
    probe = Probe()
    health = HealthChecker({"a": Check(interval_s=3600)}, probe)
    health.start()
    task = health._task
    assert task is not None
    await probe.called.wait()  # the first sweep runs at once, then the task waits an hour
    assert health.running
    with pytest.raises(RuntimeError, match="already running"):
        health.start()
    await health.stop()
    assert task.cancelled()
    assert not health.running
    await health.stop()  # a second stop is harmless
    assert probe.calls == ["a"]


async def test_stop_cancels_a_probe_in_progress() -> None:
    entered = asyncio.Event()

    async def hangs(name: str) -> None:
        entered.set()
        await asyncio.Event().wait()

    health = HealthChecker({"a": Check(timeout_s=3600)}, hangs)
    health.start()
    await entered.wait()
    await health.stop()
    assert not health.running
    assert health.health("a") == ModelHealth()  # the cancelled probe counted as nothing


async def test_with_no_models_to_check_no_task_starts() -> None:
    health = HealthChecker({}, Probe())
    health.start()
    assert not health.running
    await health.stop()
