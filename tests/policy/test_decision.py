"""Reading a rule's value as a decision: booleans, objects, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from llm_gateway.policy.decision import PolicyError, decision_from_result


def test_booleans() -> None:
    assert decision_from_result(True).allow is True
    assert decision_from_result(False).allow is False


def test_undefined_denies_and_says_so() -> None:
    decision = decision_from_result(None)
    assert decision.allow is False
    assert "undefined" in decision.reasons[0]


def test_an_object_with_every_obligation() -> None:
    decision = decision_from_result(
        {
            "allow": True,
            "reasons": {"b", "a"},  # a Rego set, as regorus returns it
            "deanonymize": True,
            "dlp_mode": "alert",
            "max_tokens": 512,
            "features": ["streaming"],
            "ner_partial": "block",
            "ner_answers": True,
            "grounding": "block",
            "ignored": 1,
        },
        revision="r1",
    )
    assert decision.allow is True
    assert decision.reasons == ("a", "b")
    assert decision.obligations.deanonymize is True
    assert decision.obligations.dlp_mode == "alert"
    assert decision.obligations.max_tokens == 512
    assert decision.obligations.ner_partial == "block"
    assert decision.obligations.ner_answers is True
    assert decision.obligations.grounding == "block"
    assert decision.permits("streaming")
    assert not decision.permits("tools")
    assert decision.revision == "r1"


def test_without_features_everything_is_permitted_when_allowed() -> None:
    assert decision_from_result({"allow": True}).permits("tools")
    assert not decision_from_result({"allow": False}).permits("tools")


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ("allow", "boolean or an object"),
        (1, "boolean or an object"),
        (["allow"], "boolean or an object"),
        ({"allow": "true"}, "'allow' must be a boolean"),
        ({"allow": True, "reasons": [1]}, "'reasons'"),
        ({"allow": True, "deanonymize": "yes"}, "'deanonymize'"),
        ({"allow": True, "dlp_mode": "ignore"}, "'dlp_mode'"),
        ({"allow": True, "max_tokens": 0}, "'max_tokens'"),
        ({"allow": True, "max_tokens": True}, "'max_tokens'"),
        ({"allow": True, "features": "tools"}, "'features'"),
        ({"allow": True, "ner_partial": "maybe"}, "'ner_partial'"),
        ({"allow": True, "ner_partial": True}, "'ner_partial'"),
        ({"allow": True, "ner_answers": "yes"}, "'ner_answers'"),
        ({"allow": True, "grounding": "warn"}, "'grounding'"),
    ],
)
def test_malformed_decisions_are_errors(result: Any, problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        decision_from_result(result)


def test_an_object_without_allow_denies() -> None:
    assert decision_from_result({"reasons": ["nothing said"]}).allow is False
