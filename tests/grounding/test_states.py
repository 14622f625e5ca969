"""State words and which of them contradict each other."""

from __future__ import annotations

from llm_gateway.grounding.states import ANSWER_STATES, conflicts, holds, state_class


def test_classes() -> None:
    assert state_class("Running") == "running"
    assert state_class("CrashLoopBackOff") == "failed"
    assert state_class("in_progress") == "processing"
    assert state_class("In Progress") == "processing"
    # "completed" says a run finished, not how: succeeded implies it, it does not imply success
    assert state_class("completed") != state_class("Succeeded")
    assert holds("completed", {"succeeded"})
    assert not holds("succeeded", {"completed"})
    assert state_class("banana") is None


def test_conflicts_within_an_axis_only() -> None:
    assert conflicts("running", "stopped")
    assert conflicts("healthy", "unhealthy")
    assert not conflicts("running", "healthy")
    assert not conflicts("open", "processing")
    assert not conflicts("running", "running")


def test_prose_words_are_not_answer_states() -> None:
    assert "error" not in ANSWER_STATES
    assert "done" not in ANSWER_STATES
    assert "stopped" in ANSWER_STATES
