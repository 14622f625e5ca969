"""What auto reads before its strategy: experiments, then capability rules."""

from __future__ import annotations

import pytest

from llm_gateway.chat import ChatRequest, Message, TextPart
from llm_gateway.config.routing import CapabilityRouting, Experiment
from llm_gateway.routing import Facts, Rules
from llm_gateway.routing.rules import bucket


def _facts(*user_texts: str, tier: str | None = "premium", user: str = "u1") -> Facts:
    messages = [Message("user", [TextPart(t)]) for t in user_texts]
    return Facts(ChatRequest(model="auto", messages=messages), user_id=user, tier=tier)


RULES = CapabilityRouting.model_validate(
    {
        "enabled": True,
        "rules": [
            {"match": {"prompt_contains": ["code", "write code"]}, "route_to": "coder"},
            {"match": {"token_estimate_gt": 50}, "route_to": "long"},
            {"match": {"user_tier": "free"}, "route_to": "cheap"},
        ],
    }
)


@pytest.mark.parametrize(
    ("text", "tier", "target"),
    [
        ("please review this CODE", "premium", "coder"),  # case-insensitive
        ("a barcode scanner", "premium", None),  # a word, not a part of one
        ("code-review tips", "premium", "coder"),  # punctuation is a boundary
        ("x " * 300, "premium", "long"),
        ("hello", "free", "cheap"),
        ("write code for me", "free", "coder"),  # the first match wins
        ("hello", "premium", None),
    ],
)
def test_the_first_matching_rule_wins(text: str, tier: str, target: str | None) -> None:
    assert Rules(RULES).target(_facts(text, tier=tier)) == target


def test_only_the_last_user_message_is_matched() -> None:
    assert Rules(RULES).target(_facts("debug my code", "thanks, now a poem")) is None


def test_rules_that_are_not_enabled_route_nothing() -> None:
    off = RULES.model_copy(update={"enabled": False})
    assert Rules(off).target(_facts("code")) is None
    assert not Rules(off)


EXPERIMENT = Experiment.model_validate(
    {
        "name": "claude-vs-gpt",
        "traffic_split": {"claude": 70, "gpt": 30},
        "match": {"prompt_contains": ["implement"]},
    }
)


def test_an_experiment_assigns_each_user_one_arm_and_splits_users_as_configured() -> None:
    rules = Rules(experiments=[EXPERIMENT])
    arms = {}
    for i in range(2000):
        user = f"user-{i}"
        arm = rules.arm(_facts("implement a parser", user=user))
        assert arm is not None
        assert rules.arm(_facts("implement it differently", user=user)) == arm  # stable
        arms[user] = arm.model
    share = sum(1 for m in arms.values() if m == "claude") / len(arms)
    # 2000 users at p = 0.7: one standard deviation is 1.0 point; allow four.
    assert 0.66 <= share <= 0.74
    assert rules.arm(_facts("hello", user="user-1")) is None  # outside the match


def test_experiments_assign_users_independently() -> None:
    same = sum(bucket("one", f"u{i}") == bucket("two", f"u{i}") for i in range(1000))
    assert same < 50  # 1 in 100 by chance


def test_a_disabled_experiment_assigns_nothing() -> None:
    off = EXPERIMENT.model_copy(update={"enabled": False})
    assert Rules(experiments=[off]).arm(_facts("implement")) is None


def test_arm_labels_name_the_experiment_and_the_model() -> None:
    arm = Rules(experiments=[EXPERIMENT]).arm(_facts("implement", user="x"))
    assert arm is not None
    assert arm.label == f"claude-vs-gpt:{arm.model}"
