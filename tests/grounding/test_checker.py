"""``check``: the options, the score, citations, and inputs that must not break it."""

from __future__ import annotations

import json

from llm_gateway.grounding import Conversation, Options, ToolResult, check

INSTANCE = '{"InstanceId": "i-0a1b2c3d4e5f60718", "State": {"Name": "stopped"}, "Count": 5}'


def conversation(output: str = INSTANCE, **kw: object) -> Conversation:
    tool = ToolResult("call_1", "describe_instance", '{"region": "us-east-1"}', output)
    return Conversation((tool,), **kw)  # type: ignore[arg-type]


def test_no_tools_is_grounded_with_no_claims() -> None:
    verdict = check(Conversation(()), "It is probably 7 instances, i-0123456789abcdef0.")
    assert verdict.grounded
    assert verdict.claims == ()
    assert verdict.score == 1.0


def test_an_empty_answer_is_grounded() -> None:
    verdict = check(conversation(), "")
    assert verdict.grounded
    assert verdict.score == 1.0
    assert verdict.failed == ()


def test_a_supported_answer() -> None:
    verdict = check(conversation(), "i-0a1b2c3d4e5f60718 is stopped; there are 5 of them.")
    assert verdict.grounded, verdict.claims
    assert {c.status for c in verdict.claims} == {"supported"}
    assert verdict.claims[0].tool_call_id == "call_1"


def test_a_contradiction_always_fails() -> None:
    options = Options(max_unsupported_claims=10, confidence_threshold=0.0)
    verdict = check(conversation(), "i-0a1b2c3d4e5f60718 is running.", options)
    assert not verdict.grounded
    assert verdict.failed == ("contradiction",)
    assert verdict.contradictions == 1
    assert verdict.claims[-1].found == "stopped"


def test_contradictions_not_detected_count_as_unsupported() -> None:
    options = Options(detect_contradictions=False, confidence_threshold=0)
    verdict = check(conversation(), "i-0a1b2c3d4e5f60718 is running.", options)
    assert verdict.failed == ("unsupported_claims",)


def test_max_unsupported_claims_lets_some_through() -> None:
    answer = "It is stopped; the bill was $12.37."
    assert "unsupported_claims" in check(conversation(), answer).failed
    relaxed = Options(max_unsupported_claims=1, confidence_threshold=0.0)
    assert check(conversation(), answer, relaxed).grounded


def test_check_tool_output_match_off_ignores_unsupported_claims() -> None:
    options = Options(check_tool_output_match=False, confidence_threshold=0.0)
    assert check(conversation(), "It took 45 minutes.", options).grounded


def test_the_score_from_logprobs() -> None:
    answer = "i-0a1b2c3d4e5f60718 is stopped."
    sure = check(conversation(), answer, logprobs=[-0.01, -0.02])
    assert sure.grounded
    assert sure.score > 0.95
    unsure = check(conversation(), answer, logprobs=[-1.0, -2.0])
    assert unsure.failed == ("confidence",)
    assert unsure.score < 0.85


def test_speculation_needs_a_tool_result_and_can_be_turned_off() -> None:
    answer = "It is probably stopped and likely fine."
    assert set(check(conversation(), answer).failed) == {"speculative_language", "blocked_phrase"}
    off = Options(flag_speculative_language=False, blocked_phrases=())
    assert check(conversation(), answer, off).grounded


def test_custom_blocked_phrases() -> None:
    options = Options(blocked_phrases=("as far as I know",))
    verdict = check(conversation(), "As far as I know it is stopped.", options)
    assert verdict.failed == ("blocked_phrase",)


def test_citations_required() -> None:
    options = Options(require_tool_citation=True)
    cited = check(conversation(), "i-0a1b2c3d4e5f60718 is stopped [tool:call_1].", options)
    assert cited.grounded, cited.uncited
    by_name = check(conversation(), "It is stopped. [tool:describe_instance]", options)
    assert by_name.grounded
    bare = check(conversation(), "i-0a1b2c3d4e5f60718 is stopped.", options)
    assert bare.failed == ("citation",)
    assert {u.reason for u in bare.uncited} == {"missing"}


def test_an_unknown_citation_is_a_finding_even_when_not_required() -> None:
    verdict = check(conversation(), "It is stopped [tool:call_9].")
    assert verdict.failed == ("citation",)
    assert verdict.uncited[0].reason == "unknown_tool"
    assert verdict.uncited[0].tool == "call_9"


def test_a_citation_id_is_not_a_claim() -> None:
    verdict = check(conversation(), "It is stopped [tool:call_1-2024].")
    assert all("call" not in c.text for c in verdict.claims)


def test_non_json_output() -> None:
    tool = ToolResult(None, None, "", "uptime: 14 days, load 0.52")
    verdict = check(Conversation((tool,)), "Up for two weeks with a load of 0.52.")
    assert verdict.grounded, verdict.claims


def test_an_error_result_and_a_claim_it_does_not_support() -> None:
    tool = ToolResult("c", "s3_list", "", "AccessDenied: not authorized", is_error=True)
    assert check(Conversation((tool,)), "Listing failed with AccessDenied.").grounded
    assert not check(Conversation((tool,)), "The bucket holds 1,204 objects.").grounded


def test_a_megabyte_of_output_completes_with_a_sane_verdict() -> None:
    items = [
        {"InstanceId": f"i-{n:017x}", "State": {"Name": "running" if n % 4 else "stopped"}}
        for n in range(16_000)
    ]
    output = json.dumps({"Reservations": [{"Instances": items}]})
    assert len(output) > 1_000_000
    tool = ToolResult("call_big", "describe_instances", "{}", output)
    good = check(Conversation((tool,)), "You have 16,000 instances; 4000 are stopped.")
    assert good.grounded, good.claims
    bad = check(Conversation((tool,)), "You have 16,500 instances.")
    assert not bad.grounded


def test_a_megabyte_of_plain_text_and_truncation() -> None:
    output = "".join(f"line {n} status ok latency {n % 97} ms\n" for n in range(40_000))
    assert len(output) > 1_000_000
    tool = ToolResult("c", "logs", "", output)
    verdict = check(
        Conversation((tool,)), "The logs look fine.", Options(max_evidence_chars=100_000)
    )
    assert verdict.grounded
    assert verdict.truncated
    assert "truncated=true" in verdict.audit_summary()


def test_huge_answer_is_bounded() -> None:
    answer = "The instance is stopped. " * 20_000
    verdict = check(conversation(), answer, Options(max_answer_chars=10_000))
    assert verdict.truncated
    assert verdict.grounded
    assert all(c.end <= 10_000 for c in verdict.claims)


def test_adversarial_text_completes() -> None:
    nasty = ("a-" * 50_000) + ("1." * 50_000) + ("x@" * 20_000) + ("::" * 20_000)
    tool = ToolResult("c", "x", nasty, nasty)
    verdict = check(Conversation((tool,), question=nasty, context=nasty), nasty[:50_000])
    assert verdict.failed != ("checker_error",)


def test_unsupported_numbers_in_advice_are_not_counted() -> None:
    answer = "i-0a1b2c3d4e5f60718 is stopped. If you want, I'd run it with 8 GB of memory."
    verdict = check(conversation(), answer)
    assert verdict.grounded, verdict.claims
    contradicted = check(conversation(), "You could start i-0a1b2c3d4e5f60718, it is running.")
    assert not contradicted.grounded  # contradictions still count in advice


def _ec2() -> Conversation:
    instances = [
        {"InstanceId": "i-0f1e2d3c4b5a69788", "State": {"Name": "running"},
         "Tags": [{"Key": "Name", "Value": "web-1"}], "PrivateIpAddress": "10.0.3.17"},
        {"InstanceId": "i-0a9b8c7d6e5f41230", "State": {"Name": "stopped"},
         "Tags": [{"Key": "Name", "Value": "web-2"}], "PrivateIpAddress": "10.0.3.42"},
    ]  # fmt: skip
    output = json.dumps({"Reservations": [{"Instances": instances}]})
    return Conversation((ToolResult("c1", "describe_instances", "{}", output),))


def test_a_tag_names_the_item_whose_tags_it_is_in() -> None:
    assert check(_ec2(), "web-1 is running and web-2 is stopped.").grounded
    swapped = check(_ec2(), "web-1 is stopped, web-2 is running.")
    assert not swapped.grounded
    assert {c.status for c in swapped.claims if c.kind == "state"} == {"contradicted"}


def test_an_attribute_of_another_item_contradicts() -> None:
    assert check(_ec2(), "web-1 is running at 10.0.3.17.").grounded
    verdict = check(_ec2(), "web-1 is running at 10.0.3.42.")
    assert [c.status for c in verdict.claims if c.kind == "ip"] == ["contradicted"]
    listed = "- web-1: 10.0.3.17\n- 10.0.3.42 is web-2"
    assert check(_ec2(), listed).grounded


def _contact() -> Conversation:
    output = json.dumps(
        {"email": "jane.whitfield@northwind.example", "tracking": "1Z999AA10123456784",
         "bucket": "acme-prod-logs", "p95_ms": 212, "p99_ms": 688}
    )  # fmt: skip
    return Conversation((ToolResult("c1", "get_contact", "{}", output),))


def test_an_invented_email_in_advice_is_still_a_claim() -> None:
    assert check(_contact(), "You can reach her at jane.whitfield@northwind.example.").grounded
    assert not check(_contact(), "You can reach her at jwhitfield@northwind.example.").grounded


def test_a_tracking_number_one_transposition_away_contradicts() -> None:
    assert check(_contact(), "Tracking number 1Z999AA10123456784.").grounded
    verdict = check(_contact(), "Tracking number 1Z999AA10123456748.")
    assert [c.status for c in verdict.claims] == ["contradicted"]


def test_a_hyphenated_name_one_letter_off_contradicts_and_others_are_no_claims() -> None:
    assert check(_contact(), "The bucket acme-prod-logs exists.").grounded
    assert not check(_contact(), "The bucket acme-prod-log exists.").grounded
    assert check(_contact(), "It is a state-of-the-art bucket.").grounded


def test_a_letter_and_digit_key_names_its_value() -> None:
    assert check(_contact(), "p95 is 212 ms.").grounded
    verdict = check(_contact(), "p95 is 688 ms.")
    assert [c.status for c in verdict.claims] == ["contradicted"]


def test_a_later_call_of_the_same_tool_supersedes_the_earlier_result() -> None:
    first = ToolResult("c1", "get_order", '{"id": "ORD-1"}', '{"status": "processing"}')
    again = ToolResult("c2", "get_order", '{"id": "ORD-1"}', '{"status": "shipped"}')
    polled = Conversation((first, again))
    assert check(polled, "ORD-1 has shipped.").grounded
    assert not check(polled, "ORD-1 is still processing.").grounded
    other = ToolResult("c2", "get_order", '{"id": "ORD-2"}', '{"status": "shipped"}')
    assert check(Conversation((first, other)), "ORD-1 is processing.").grounded


def test_all_of_a_table_s_rows_in_a_state() -> None:
    table = "NAME   STATUS\napi-1  Running\napi-2  CrashLoopBackOff\n"
    conv = Conversation((ToolResult("c1", "kubectl", "{}", table),))
    assert not check(conv, "Yes, all the pods in payments are running.").grounded


def test_a_page_of_a_listing_is_not_its_total() -> None:
    items = [{"number": n} for n in range(5)]
    paged = json.dumps({"total_count": 12, "items": items})
    conv = Conversation((ToolResult("c1", "search", '{"per_page": 5}', paged),))
    assert not check(conv, "You have 5 open bugs.").grounded
    assert check(conv, "You have 12 open bugs; the first 5 are listed.").grounded
    truncated = json.dumps({"key_count": 1000, "is_truncated": True})
    conv = Conversation((ToolResult("c1", "list_objects", "{}", truncated),))
    assert not check(conv, "There are exactly 1,000 objects.").grounded
    assert check(conv, "There are at least 1,000 objects.").grounded


def _calendar() -> Conversation:
    events = [
        {"title": "Design review: onboarding", "start": "14:00", "end": "15:30"},
        {"title": "1:1 with Marco", "start": "16:00", "end": "16:30"},
    ]
    output = json.dumps({"date": "2026-12-08", "events": events})
    return Conversation((ToolResult("c1", "list_events", "{}", output),))


def test_a_time_range_s_first_hour_takes_its_pm() -> None:
    assert check(_calendar(), "On December 8: the design review runs from 2 to 3:30 PM.").grounded


def test_a_time_of_another_item_contradicts() -> None:
    verdict = check(_calendar(), "The design review runs from 2 to 4:30 PM.")
    assert [c.status for c in verdict.claims if c.kind == "time"] == ["supported", "contradicted"]


def test_a_count_of_them_is_of_the_noun_after() -> None:
    log = "ERROR timeout\nERROR timeout\nERROR pool exhausted\n"
    conv = Conversation((ToolResult("c1", "search_logs", "{}", log),))
    assert check(conv, "Three errors, two of them timeouts.").grounded


def test_durations_in_two_units_and_compact_ages() -> None:
    flight = json.dumps({"scheduled": "2026-12-07T11:05:00", "estimated": "2026-12-07T12:20:00"})
    conv = Conversation((ToolResult("c1", "flight", "{}", flight),))
    assert check(conv, "It is delayed by 1 hour 15 minutes.").grounded
    assert not check(conv, "It is delayed by 1 hour 25 minutes.").grounded
    pods = "NAME   RESTARTS      AGE\napi-1  14 (2m ago)   3d4h\n"
    conv = Conversation((ToolResult("c1", "kubectl", "{}", pods),))
    assert check(conv, "api-1 restarted 14 times, the last two minutes ago.").grounded


def test_a_phone_number_reformatted() -> None:
    conv = Conversation((ToolResult("c1", "contact", "{}", '{"phone": "+1 415-555-0142"}'),))
    assert check(conv, "Call +1 (415) 555-0142.").grounded
    assert not check(conv, "Call +1 (415) 555-0124.").grounded


def test_a_weekday_of_a_date() -> None:
    conv = Conversation((ToolResult("c1", "pr", "{}", '{"merged_at": "2026-11-30T16:42:10Z"}'),))
    assert check(conv, "Merged on Monday, November 30.").grounded
    assert not check(conv, "Merged on Sunday, November 30.").grounded


def test_a_boolean_feature_claimed_or_denied() -> None:
    output = json.dumps(
        {"MultiAZ": False, "BlockPublicAcls": True, "merged": True, "state": "closed"}
    )
    conv = Conversation((ToolResult("c1", "describe", "{}", output),))
    assert not check(conv, "It is available and Multi-AZ.").grounded
    assert check(conv, "It is single-AZ (Multi-AZ is off).").grounded
    assert check(conv, "BlockPublicAcls is on and it was merged.").grounded
    assert not check(conv, "BlockPublicAcls is off.").grounded


def test_a_time_in_a_named_zone() -> None:
    conv = Conversation((ToolResult("c1", "pr", "{}", '{"merged_at": "2026-11-30T16:42:10Z"}'),))
    assert check(conv, "Merged at 11:42 AM New York time (16:42 UTC).").grounded
    assert not check(conv, "Merged at 11:42 AM UTC.").grounded


def test_ordinal_days_thresholds_and_both() -> None:
    output = json.dumps(
        [{"date": "2026-12-03", "amount": -139.99}, {"date": "2026-12-05", "amount": 12.5}]
    )
    conv = Conversation((ToolResult("c1", "transactions", "{}", output),))
    assert check(conv, "On the 3rd the only charge over $100 was $139.99.").grounded
    assert not check(conv, "On the 3rd the only charge was $149.99.").grounded
    assert check(conv, "I could not compare both accounts.").grounded


def test_a_run_that_completed_and_failed_did_not_pass() -> None:
    runs = json.dumps(
        {"runs": [{"run_number": 1287, "status": "completed", "conclusion": "failure"},
                  {"run_number": 1286, "status": "completed", "conclusion": "success"}]}
    )  # fmt: skip
    jobs = json.dumps({"jobs": [{"name": "unit-tests", "conclusion": "failure"},
                                {"name": "e2e", "conclusion": "skipped"}]})  # fmt: skip
    conv = Conversation(
        (ToolResult("c1", "runs", "{}", runs), ToolResult("c2", "jobs", "{}", jobs))
    )
    assert not check(conv, "The latest run (#1287) passed.").grounded
    assert check(conv, "Run #1286 passed and #1287 completed.").grounded
    assert not check(conv, "unit-tests were skipped.").grounded
    assert check(conv, "e2e was skipped.").grounded


def test_an_apposition_names_the_row() -> None:
    rows = {"columns": ["customer_id", "name"],
            "rows": [[10422, "Hartwell & Sons"], [20871, "Mira Okonkwo"]]}  # fmt: skip
    conv = Conversation(
        (ToolResult("c1", "run_sql", '{"query": "SELECT customer_id"}', json.dumps(rows)),)
    )
    assert check(conv, "The top customer is Hartwell & Sons (customer 10422).").grounded
    assert not check(conv, "The top customer is Hartwell & Sons (customer 20871).").grounded


def test_a_camel_case_name_reported_before_advice() -> None:
    output = json.dumps({"AttachedPolicies": [{"PolicyName": "ci-deployer-s3-artifacts"}]})
    conv = Conversation((ToolResult("c1", "list_policies", "{}", output),))
    assert check(conv, "It has ci-deployer-s3-artifacts.").grounded
    invented = "It has ci-deployer-s3-artifacts and AdministratorAccess; you should remove it."
    assert not check(conv, invented).grounded
    assert check(
        conv, "It has ci-deployer-s3-artifacts; you could add ReadOnlyAccessPolicy."
    ).grounded


def test_a_psql_table_and_its_row_count() -> None:
    table = " region | orders\n--------+-------\n APAC   |    415\n EMEA   |    932\n(2 rows)\n"
    query = '{"query": "SELECT region, COUNT(*) AS orders FROM orders GROUP BY region"}'
    conv = Conversation((ToolResult("c1", "run_sql", query, table),))
    assert check(conv, "1,347 orders in all; EMEA had 932.").grounded
    empty = " id | email\n----+-------\n(0 rows)\n"
    query = '{"query": "SELECT id, email FROM users WHERE day = 1"}'
    conv = Conversation((ToolResult("c1", "run_sql", query, empty),))
    assert not check(conv, "Three users signed up yesterday.").grounded
    assert check(conv, "No users signed up yesterday.").grounded


def test_pending_is_not_open() -> None:
    conv = Conversation((ToolResult("c1", "ticket", "{}", '{"status": "open"}'),))
    assert not check(conv, "The ticket is pending.").grounded
    assert check(conv, "The ticket is open.").grounded


def test_a_premise_of_the_user_that_a_tool_answers_otherwise() -> None:
    tool = ToolResult("c1", "describe_db", "{}", '{"AllocatedStorage": 500, "Port": 5432}')
    conv = Conversation((tool,), question="Does prod-db have 2 TB allocated?")
    assert not check(conv, "Yes, prod-db has 2 TB allocated.").grounded
    other = Conversation((tool,), question="I need 2 TB for the migration.")
    assert check(other, "You need 2 TB for the migration; it listens on 5432.").grounded


def test_a_condition_list_gives_its_item_s_state() -> None:
    def node(name: str, ready: str) -> dict[str, object]:
        return {"metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}}  # fmt: skip

    output = json.dumps({"items": [node("ip-10-0-1-23", "True"), node("ip-10-0-2-51", "False")]})
    conv = Conversation((ToolResult("c1", "kubectl", "{}", output),))
    assert check(conv, "ip-10-0-2-51 is NotReady.").grounded
    assert not check(conv, "ip-10-0-1-23 is NotReady.").grounded
