"""The challenge's scope and the exact phrase that confirms it."""

from __future__ import annotations

import json

import pytest

from llm_gateway.hitl import Scope, confirmation_phrase, normalised, scope_of

SEVEN = [f"i-{n:08x}" for n in range(7)]


def test_the_scope_is_the_longest_list_of_plain_values_in_the_arguments() -> None:
    arguments = json.dumps({"region": "eu-west-1", "tags": ["a"], "instance_ids": SEVEN})
    scope = scope_of(arguments)
    assert (scope.items, scope.key) == (tuple(SEVEN), "instance_ids")
    nested = scope_of(json.dumps({"request": {"targets": {"InstanceIds": [1, 2, 3]}}}))
    assert (nested.items, nested.key) == (("1", "2", "3"), "InstanceIds")
    assert scope_of("not json") == Scope((), None)
    assert scope_of(json.dumps({"dry_run": True})) == Scope((), None)


def test_the_summary_shows_a_few_then_how_many_more() -> None:
    assert Scope(tuple(SEVEN), "ids").shown() == [*SEVEN[:3], "... [4 more]"]
    assert Scope(("a", "b"), None).shown() == ["a", "b"]


@pytest.mark.parametrize(
    ("verb", "arguments", "tool", "phrase"),
    [
        (
            "terminate",
            {"instance_ids": SEVEN},
            "terminate_instances",
            "confirm terminate 7 instances",
        ),
        ("delete", {"InstanceIds": SEVEN[:1]}, "ec2_delete", "confirm delete 1 instance"),
        ("delete", {"targets": ["a", "b"]}, "delete_buckets", "confirm delete 2 targets"),
        ("delete", {"x": ["a", "b"]}, "delete_policies", "confirm delete 2 xes"),
        ("remove", {"ids": ["a", "b"]}, "remove_policies", "confirm remove 2 policies"),
        ("drop", {"names": ["a", "b", "c"]}, "drop", "confirm drop 3 items"),
        ("delete", {}, "delete_everything", "confirm delete"),
    ],
)
def test_the_phrase_is_verb_count_and_noun(
    verb: str, arguments: dict[str, object], tool: str, phrase: str
) -> None:
    assert confirmation_phrase(verb, scope_of(json.dumps(arguments)), tool) == phrase


def test_a_reply_is_compared_without_case_spacing_or_edge_punctuation() -> None:
    assert normalised("  Confirm   Terminate 7 instances. ") == "confirm terminate 7 instances"
    assert normalised("'confirm terminate 7 instances'") == "confirm terminate 7 instances"
    assert normalised("confirm terminate 6 instances") != "confirm terminate 7 instances"
