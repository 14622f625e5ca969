"""The derivation search and the aggregates it starts from, through ``check``."""

from __future__ import annotations

import json

from llm_gateway.grounding import Conversation, ToolResult, check


def _with(output: object, args: str = "{}") -> Conversation:
    return Conversation((ToolResult("c1", "tool", args, json.dumps(output)),))


def _status(conversation: Conversation, answer: str, text: str) -> str:
    verdict = check(conversation, answer)
    return next(c.status for c in verdict.claims if text in c.text)


def test_a_difference_the_answer_says_it_took() -> None:
    conv = _with({"forecast": {"amount": 2480}, "actual": {"amount": 2100}})
    assert _status(conv, "December is $380 more than November.", "380") == "derived"


def test_a_change_in_percent_and_a_share() -> None:
    conv = _with({"months": [{"cost": 1750}, {"cost": 2100}]})
    assert _status(conv, "It went up by 20% from October.", "20%") == "derived"
    disk = _with({"size_gb": 200, "avail_gb": 18})
    assert _status(disk, "Only 9% of the disk is free.", "9%") == "derived"


def test_a_quotient_by_a_rate_into_a_larger_unit() -> None:
    conv = _with({"vacation_hours": 56, "hours_per_day": 8})
    assert _status(conv, "That is 7 days of vacation.", "7 days") == "derived"


def test_no_arithmetic_without_words_that_say_so() -> None:
    conv = _with({"rows": [{"user": "alice", "orders": 12}, {"user": "carol", "orders": 3}]})
    assert _status(conv, "Dave placed 9 orders.", "9") != "derived"


def test_a_sum_is_not_added_to_its_own_terms() -> None:
    conv = _with({"rows": [{"revenue": 1250000}, {"revenue": 2100000}, {"revenue": 640000}]})
    assert _status(conv, "Total revenue was $4.6M.", "4.6M") != "derived"


def test_debits_and_credits_and_string_amounts() -> None:
    conv = _with({"transactions": [{"amount": -1250.0}, {"amount": "-86.41"}, {"amount": 3120.55}]})
    assert _status(conv, "You spent $1,336.41 across two debits.", "1,336.41") == "derived"
    assert _status(conv, "You spent $1,336.41 across two debits.", "two") == "derived"


def test_a_sibling_unit_field_gives_the_unit() -> None:
    conv = _with({"Datapoints": [{"Average": 5368709120.0, "Unit": "Bytes"}]})
    assert _status(conv, "The bucket holds 5 GiB.", "5 GiB") == "derived"


def test_counts_of_a_top_level_list_by_value() -> None:
    conv = _with([{"state": "firing"}, {"state": "firing"}, {"state": "resolved"}])
    assert _status(conv, "Two alerts are firing.", "Two") == "derived"


def test_the_median_of_a_column() -> None:
    conv = _with({"samples": [{"ms": 10}, {"ms": 41}, {"ms": 90}]})
    assert _status(conv, "The median is 41.", "41") in ("supported", "derived")
    assert (
        _status(
            _with({"s": [{"v": 10}, {"v": 20}, {"v": 31}, {"v": 90}]}), "A median of 25.5.", "25.5"
        )
        == "derived"
    )


def test_two_calls_counts_add_up_and_a_count_of_the_other_call_contradicts() -> None:
    def call(i: int, region: str, n: int) -> ToolResult:
        out = json.dumps({"Instances": [{"InstanceId": f"i-0{i}{k:015d}"} for k in range(n)]})
        return ToolResult(f"c{i}", "describe_instances", json.dumps({"region": region}), out)

    conv = Conversation((call(1, "us-east-1", 4), call(2, "eu-west-1", 2)))
    assert _status(conv, "Six instances in total.", "Six") == "derived"
    assert _status(conv, "eu-west-1 has 4 instances.", "4") == "contradicted"
    assert _status(conv, "us-east-1 has 4 instances.", "4") == "derived"


def test_an_empty_list_supports_none_of_them() -> None:
    conv = _with([{"number": 1, "reviewers": ["ann"]}, {"number": 2, "reviewers": []}])
    assert _status(conv, "The second has no reviewers.", "no reviewers") == "derived"


def test_a_debit_is_reported_as_its_amount() -> None:
    conv = _with({"transactions": [{"amount": -1250.0}, {"amount": 3120.55}]})
    assert _status(conv, "Rent was $1,250.00.", "1,250.00") == "supported"


def test_a_value_with_a_unit_is_not_a_count_under_another_key() -> None:
    conv = _with({"p50_ms": 41, "requests": 18234901})
    assert _status(conv, "The median request takes 41 ms.", "41 ms") == "supported"


def test_a_count_of_items_with_none_of_something() -> None:
    users = [{"UserName": n, "MFADevices": d} for n, d in (("a", 1), ("b", 0), ("c", 2), ("d", 0))]
    conv = _with({"Users": users})
    assert _status(conv, "Two users lack MFA devices.", "Two") == "derived"
    assert _status(conv, "Three users lack MFA devices.", "Three") == "contradicted"


def test_a_count_of_items_in_two_categories() -> None:
    alerts = [
        {"name": "a", "severity": "critical", "state": "firing"},
        {"name": "b", "severity": "warning", "state": "firing"},
        {"name": "c", "severity": "warning", "state": "firing"},
        {"name": "d", "severity": "critical", "state": "resolved"},
    ]
    conv = _with(alerts)
    assert _status(conv, "Two critical alerts are firing.", "Two") == "contradicted"
    assert _status(conv, "One critical alert is firing, 2 warnings.", "2") == "derived"
    assert _status(conv, "Three alerts are firing.", "Three") == "derived"


def test_the_rest_of_a_list_and_a_shared_type_with_a_digit() -> None:
    kinds = ["t3.medium", "t3.medium", "m5.large", "c5.xlarge", "t2.micro"]
    conv = _with({"Instances": [{"InstanceType": k, "State": "stopped"} for k in kinds]})
    answer = "Two of them are t3.medium; the other three are other types."
    assert _status(conv, answer, "Two") == "derived"
    assert _status(conv, answer, "three") == "derived"


def test_a_duration_whose_unit_is_a_word_later() -> None:
    conv = _with({"sick_hours": 24, "hours_per_day": 8})
    assert _status(conv, "You have three sick days.", "three") == "derived"


def test_number_words_in_a_snippet() -> None:
    conv = _with({"results": [{"snippet": "expected bugfix releases every two months"}]})
    assert _status(conv, "Bugfix releases come every two months.", "two") == "supported"
