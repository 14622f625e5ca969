"""Which input paths a policy reads, and when its decisions cannot be kept by them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.policy.dependencies import input_paths

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_policy_reads_seven_paths() -> None:
    reads = input_paths([(REPO / "policies" / "rego" / "authz.rego").read_text()])
    assert reads.cacheable
    assert reads.paths == (
        ("action",), ("confirmation",), ("request", "features"), ("request", "model"),
        ("request", "scope"), ("user", "role"), ("user", "tier"),
    )  # fmt: skip


def test_a_shorter_path_covers_the_longer_ones_and_indexing_reads_the_whole_value() -> None:
    reads = input_paths([
        'package p\nimport rego.v1\nallow if input.user.role == "admin"\n'
        "allow if input.user\n"
        'allow if "x" in input.request.features[_]\n'
        'allow if input.user.claims["https://idp/groups"][_] == "ops"\n'
    ])  # fmt: skip
    assert reads.paths == (("request", "features"), ("user",))


def test_comments_and_strings_are_not_read() -> None:
    reads = input_paths([
        "package p\nimport rego.v1\n# input[x] and time.now_ns() in a comment\n"
        'msg := "input.secret, http.send(x)"\n'
        "raw := `input[y]`\n"
        'allow if { input.action == "chat"; msg != "\\"input\\"" }\n'
    ])  # fmt: skip
    assert reads.cacheable
    assert reads.paths == (("action",),)


def test_the_policys_own_functions_and_imported_packages_are_calls_it_may_make() -> None:
    reads = input_paths([
        "package p\nimport rego.v1\nimport data.lib.tiers\nimport data.lib.util as u\n"
        "big(t) if t in {\"premium\", \"enterprise\"}\n"
        "allow if { big(input.user.tier); tiers.known(input.user.tier); u.ok(input.action) }\n"
        "allow if data.lib.more.check(input.request.model)\n"
    ])  # fmt: skip
    assert reads.cacheable, reads.refusal
    assert reads.paths == (("action",), ("request", "model"), ("user", "tier"))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("allow if input[k] == 1", "as a whole"),
        ('allow if { x := input; x.user.role == "admin" }', "as a whole"),
        ("allow if walk(input, [p, v])", "as a whole"),
        ('allow if data.p.inner with input as {"a": 1}', "as a whole"),
        ("allow if time.now_ns() > input.deadline", "time.now_ns"),
        ('allow if rand.intn("x", 10) > 5', "rand.intn"),
        ('allow if http.send({"url": input.url}).status_code == 200', "http.send"),
        ('allow if uuid.rfc4122(input.user.id) != ""', "uuid.rfc4122"),
    ],
)
def test_what_it_cannot_account_for_makes_the_policy_uncacheable(body: str, why: str) -> None:
    reads = input_paths([f"package p\nimport rego.v1\n{body}\n"])
    assert not reads.cacheable
    assert reads.paths == ()
    assert reads.refusal is not None
    assert why in reads.refusal


def test_importing_the_input_makes_it_uncacheable() -> None:
    reads = input_paths(["package p\nimport rego.v1\nimport input.user as u\nallow if u.role"])
    assert reads.refusal == "it imports input"
