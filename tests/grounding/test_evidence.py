"""Tool outputs flattened into facts: numbers with their keys, counts, states, dates."""

from __future__ import annotations

from llm_gateway.grounding.evidence import QUESTION, build
from llm_gateway.grounding.model import Conversation, ToolResult

EC2 = (
    '{"Reservations": [{"Instances": ['
    '{"InstanceId": "i-01", "State": {"Name": "running"}, "LaunchTime": "2024-03-04T08:15:00Z"},'
    '{"InstanceId": "i-02", "State": {"Name": "stopped"}}]},'
    '{"Instances": [{"InstanceId": "i-03", "State": {"Name": "running"}}]}]}'
)


def test_counts_of_lists_and_of_shared_values() -> None:
    evidence = build(Conversation((ToolResult("c", "describe_instances", "", EC2),)), 10**6)
    counts = {(n.value, n.how) for n in evidence.counts}
    assert (3.0, "count") in counts  # instances across both reservations
    assert (2.0, "count of [].State.Name=running") in counts
    assert (1.0, "count of [].State.Name=stopped") in counts


def test_states_belong_to_the_object_that_holds_them() -> None:
    evidence = build(Conversation((ToolResult("c", "x", "", EC2),)), 10**6)
    (scope,) = evidence.entities["i-02"]
    assert evidence.scope_states[scope] == {"stopped"}


def test_numbers_keep_their_key_words_and_units() -> None:
    evidence = build(
        Conversation((ToolResult("c", "x", "", '{"MemoryInfo": {"SizeInMiB": 2048}}'),)), 10**6
    )
    (number,) = evidence.numbers
    assert number.value == 2048
    assert number.unit == "mib"
    assert {"memory", "size"} <= number.words


def test_column_aggregates_and_tabular_rows() -> None:
    output = '{"columns": ["user", "orders"], "rows": [["alice", 12], ["bob", 7]]}'
    evidence = build(Conversation((ToolResult("c", "run_sql", "", output),)), 10**6)
    derived = {(n.how, n.value) for n in evidence.derived}
    assert ("sum", 19.0) in derived
    assert ("max", 12.0) in derived
    assert any("order" in n.words for n in evidence.numbers if n.value == 7)


def test_plain_text_lines_states_and_numbers() -> None:
    output = "NAME  STATUS   RESTARTS\napi-1  Running  3\ndb-0   Pending  0\n"
    evidence = build(Conversation((ToolResult("c", "kubectl", "", output),)), 10**6)
    (scope,) = evidence.entities["api-1"]
    assert evidence.scope_states[scope] == {"running"}
    assert 3.0 in {n.value for n in evidence.numbers}
    assert 2.0 in {n.value for n in evidence.counts}  # lines below the header


def test_the_question_is_known_but_not_tool_evidence() -> None:
    evidence = build(
        Conversation((ToolResult("c", "x", "", "{}"),), question="in the last 7 days"), 10**6
    )
    (number,) = [n for n in evidence.numbers if n.value == 7]
    assert number.source == QUESTION


def test_error_results_are_a_failed_state() -> None:
    tool = ToolResult("c", "x", "", "AccessDenied", is_error=True)
    assert "failed" in build(Conversation((tool,)), 10**6).all_states


def test_the_cap_truncates_and_says_so() -> None:
    big = "x" * 1000
    evidence = build(Conversation((ToolResult("c", "x", "", big),)), 100)
    assert evidence.truncated
    assert sum(len(t) for _, t in evidence.texts) <= 100


def test_broken_json_is_read_as_text() -> None:
    evidence = build(Conversation((ToolResult("c", "x", "", '{"count": 5, "oops'),)), 10**6)
    assert 5.0 in {n.value for n in evidence.numbers}
