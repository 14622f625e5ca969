"""Which prompts and tool calls a confirmation rule catches."""

from __future__ import annotations

import pytest

from llm_gateway.chat import ToolCall
from llm_gateway.config.guardrails import Hitl
from llm_gateway.hitl import Checkpoints, words_of

SPEC = Hitl.model_validate(
    {
        "enabled": True,
        "confirmation_required": [
            {"pattern": "delete|remove|terminate|destroy",
             "environments": ["production", "staging"], "cooldown_seconds": 5},
            {"pattern": "scale|resize|modify", "min_cost_impact_usd": 50},
            {"pattern": "iam|security-group|secret", "always": True, "require_mfa": True},
        ],
    }
)  # fmt: skip
CHECKS = Checkpoints(SPEC)


@pytest.mark.parametrize(
    ("text", "environment", "cost", "rule", "verb"),
    [
        ("Delete all stopped EC2 instances", "production", None, 0, "delete"),
        ("Delete all stopped EC2 instances", "development", None, None, None),
        ("please TERMINATE the old fleet", "staging", None, 0, "terminate"),
        ("the undeleted rows", "production", None, None, None),  # whole words only
        ("scale the cluster to 40 nodes", None, 120.0, 1, "scale"),
        ("scale the cluster to 2 nodes", None, 10.0, None, None),
        ("scale the cluster", None, None, None, None),  # no known cost: under no threshold
        ("rotate the IAM keys", None, None, 2, "iam"),  # always
        ("William asked my secretary", None, None, None, None),
        ("open the security-group to the world", "development", None, 2, "security-group"),
    ],
)
def test_a_prompt_triggers_the_first_rule_that_applies_and_matches(
    text: str, environment: str | None, cost: float | None, rule: int | None, verb: str | None
) -> None:
    known = [environment] if environment else []
    trigger = CHECKS.prompt(text, environments=known, cost_usd=cost)
    if rule is None:
        assert trigger is None
    else:
        assert trigger is not None
        assert (trigger.index, trigger.verb, trigger.source) == (rule, verb, "prompt")


def test_a_tool_call_is_matched_by_its_name_read_as_words_then_by_its_arguments() -> None:
    by_name = ToolCall("c1", "terminate_instances", '{"instance_ids": ["i-1"]}')
    trigger = CHECKS.tool_call(by_name, environments=["production"])
    assert trigger is not None
    assert (trigger.index, trigger.verb, trigger.tool_call) == (0, "terminate", by_name)
    camel = CHECKS.tool_call(
        ToolCall("c2", "terminateInstances", "{}"), environments=["production"]
    )
    assert camel is not None
    by_arguments = ToolCall("c3", "ec2", '{"action": "destroy", "ids": ["i-1"]}')
    assert CHECKS.tool_call(by_arguments, environments=["staging"]) is not None
    harmless = ToolCall("c4", "describe_instances", '{"filters": ["stopped"]}')
    assert CHECKS.tool_call(harmless, environments=["production"]) is None


def test_a_disabled_section_or_no_rule_holds_nothing() -> None:
    off = Checkpoints(SPEC.model_copy(update={"enabled": False}))
    assert not off
    assert off.prompt("delete everything", environments=["production"]) is None
    assert CHECKS


def test_identifiers_read_as_words() -> None:
    assert words_of("terminateInstances") == "terminate Instances"
    assert words_of("scale-up.nodes_now") == "scale up nodes now"


def test_any_known_environment_a_rule_lists_makes_it_apply() -> None:
    """A caller cannot talk their way out of a production rule with x-environment."""
    said_development = CHECKS.prompt("delete it", environments=["development", "production"])
    assert said_development is not None
    assert said_development.environment == "production"
    call = ToolCall("c1", "delete_bucket", '{"bucket": "b", "environment": "staging"}')
    trigger = CHECKS.tool_call(call, environments=["development"])
    assert trigger is not None
    assert trigger.environment == "staging"  # named by the tool call itself


def test_a_tool_calls_stated_cost_meets_a_cost_threshold() -> None:
    costly = ToolCall("c1", "scale_cluster", '{"nodes": 40, "cost_impact_usd": 120.5}')
    trigger = CHECKS.tool_call(costly, environments=[])
    assert trigger is not None
    assert (trigger.index, trigger.verb) == (1, "scale")
    cheap = ToolCall("c2", "scale_cluster", '{"nodes": 3, "estimated_cost": 12}')
    assert CHECKS.tool_call(cheap, environments=[]) is None
    unknown = ToolCall("c3", "scale_cluster", '{"nodes": 3}')
    assert CHECKS.tool_call(unknown, environments=[]) is None


def test_a_configured_estimate_stands_in_for_a_cost_the_call_does_not_state() -> None:
    estimated = Checkpoints(
        SPEC.model_copy(update={"tool_cost_estimates_usd": {"scale_cluster": 80.0}})
    )
    unstated = ToolCall("c1", "scale_cluster", '{"nodes": 3}')
    trigger = estimated.tool_call(unstated, environments=[])
    assert trigger is not None
    assert (trigger.index, trigger.cost_usd) == (1, 80.0)
    stated = ToolCall("c2", "scale_cluster", '{"nodes": 3, "cost_usd": 20}')
    assert estimated.tool_call(stated, environments=[]) is None  # the call's own figure wins
    assert estimated.tool_call(ToolCall("c3", "resize_disk", "{}"), environments=[]) is None


def test_the_trigger_carries_the_cost_impact_it_was_judged_on() -> None:
    costly = ToolCall("c1", "scale_cluster", '{"cost_impact_usd": 234}')
    trigger = CHECKS.tool_call(costly, environments=[])
    assert trigger is not None
    assert trigger.cost_usd == 234.0
    deleted = CHECKS.tool_call(ToolCall("c2", "delete_bucket", "{}"), environments=["staging"])
    assert deleted is not None
    assert deleted.cost_usd is None
