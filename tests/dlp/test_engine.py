"""The rule engine: built-in PII detectors, custom rules, scoring, overlaps, linear time."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from llm_gateway.dlp.backends import BackendError
from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.resolve import Candidate, resolve_overlaps
from tests.dlp.samples import ADVERSARIAL, HARD_NEGATIVES, POSITIVES, rand

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(None)


@pytest.fixture(scope="module")
def spec_engine() -> RuleEngine:
    return RuleEngine.load(REPO / "config" / "dlp_rules.yaml")


def spans(findings: list[Finding], text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in findings]


@pytest.mark.parametrize(("entity", "label", "text", "value"), POSITIVES)
def test_pii_true_positives(
    engine: RuleEngine, entity: str, label: str, text: str, value: str
) -> None:
    findings = engine.scan(text)
    assert spans(findings, text) == [(entity, value)]
    assert (findings[0].label, findings[0].category) == (label, "pii")


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negatives_raise_nothing(engine: RuleEngine, text: str) -> None:
    assert spans(engine.scan(text), text) == []


def test_findings_are_sorted_disjoint_and_carry_the_rule(engine: RuleEngine) -> None:
    text = "a@b.io 219-09-9988 x@y.org 4111111111111111 203.0.113.9 c@d.net"
    findings = engine.scan(text)
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
    assert [f.rule for f in findings] == [
        "pii.email_address",
        "pii.us_ssn",
        "pii.email_address",
        "pii.credit_card",
        "pii.ip_address_v4",
        "pii.email_address",
    ]


def test_pii_takes_the_engine_default_action() -> None:
    blocking = RuleEngine.load(None, default_action=Action.BLOCK, enable_secrets=False)
    (finding,) = blocking.scan("SSN 219-09-9988")
    assert (finding.action, finding.severity) == (Action.BLOCK, Severity.HIGH)


def test_disabling_pii_removes_the_family() -> None:
    engine = RuleEngine.load(None, enable_pii=False)
    assert all(rule.category == "secret" for rule in engine.rules)
    assert engine.scan("SSN 219-09-9988, a@b.io") == []


def test_no_rules_at_all_finds_nothing() -> None:
    engine = RuleEngine.load(None, enable_pii=False, enable_secrets=False)
    assert engine.rules == ()
    assert engine.scan("SSN 219-09-9988") == []


def test_empty_text(engine: RuleEngine) -> None:
    assert engine.scan("") == []


# --- scoring -----------------------------------------------------------------


def test_context_raises_the_score(engine: RuleEngine) -> None:
    (plain,) = engine.scan("ref 219-09-9988")
    (boosted,) = engine.scan("social security 219-09-9988")
    assert (plain.score, boosted.score) == (0.85, 1.0)


def test_a_low_score_rule_reports_only_in_context(engine: RuleEngine) -> None:
    assert engine.scan("invoice 1985-03-15 paid") == []
    (finding,) = engine.scan("date of birth: 1985-03-15")
    assert (finding.entity, finding.score) == ("DATE_TIME", 0.65)
    # The word must start a word: "dob" inside "adobe" is not context.
    assert engine.scan("adobe release 1985-03-15") == []


def test_a_bare_ssn_reports_unless_a_word_nearby_says_otherwise(engine: RuleEngine) -> None:
    (row,) = engine.scan("Josh Kaur-Wells;367969261;Schleich")
    assert (row.rule, row.score) == ("pii.us_ssn_unformatted", 0.5)
    (confirmed,) = engine.scan("SSN 367969261")
    assert confirmed.score == 0.85
    assert engine.scan("Invoice 367969261 is overdue.") == []  # negative context
    assert engine.scan("Orders 367969261 and 536221234 shipped") == []  # plural counts
    assert engine.scan("see #367969261 and PO-367969261") == []  # part of a longer token
    # Whole words only: "po" (purchase order) is not in "population".
    assert [f.score for f in engine.scan("population 367969261")] == [0.5]


def test_context_is_looked_for_near_the_value_only(engine: RuleEngine) -> None:
    far = "born somewhere. " + "filler text " * 10 + "then 1985-03-15"
    assert engine.scan(far) == []


def _custom(tmp_path: Path, body: str) -> RuleEngine:
    path = tmp_path / "rules.yaml"
    path.write_text(body)
    return RuleEngine.load(path, enable_pii=False, enable_secrets=False)


def test_keywords_gate_a_rule(tmp_path: Path) -> None:
    engine = _custom(
        tmp_path,
        "rules:\n  - name: project\n    pattern: '\\bPRJ-\\d{4}\\b'\n    keywords: [Apollo]\n",
    )
    assert engine.scan("ticket PRJ-1234") == []
    (finding,) = engine.scan("apollo ticket PRJ-1234")
    assert finding.rule == "project"


def test_allowlist_and_validators_and_value_group(tmp_path: Path) -> None:
    engine = _custom(
        tmp_path,
        "rules:\n"
        "  - name: employee\n"
        "    pattern: 'emp=(?P<value>\\d{6})'\n"
        "    validator: luhn\n"
        "    allowlist: ['000000']\n"
        "    action: alert\n",
    )
    text = "emp=000000 emp=123455 emp=123456"
    findings = engine.scan(text)
    assert [text[f.start : f.end] for f in findings] == ["123455"]
    assert findings[0].action is Action.ALERT


def test_a_consumed_boundary_does_not_hide_the_next_match(engine: RuleEngine) -> None:
    text = "10.0.0.1 10.0.0.2,10.0.0.3"
    assert [v for _, v in spans(engine.scan(text), text)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


# --- overlaps ----------------------------------------------------------------


def test_an_alert_rule_never_weakens_a_built_in_redaction(spec_engine: RuleEngine) -> None:
    """The spec's internal_ip alert is raised, and the built-in IP detector still redacts."""
    text = "ssh to 10.20.30.40 please"
    found = [(f.rule, f.action, text[f.start : f.end]) for f in spec_engine.scan(text)]
    assert found == [
        ("pii.ip_address_v4", Action.REDACT, "10.20.30.40"),
        ("internal_ip", Action.ALERT, "10.20.30.40"),
    ] or found == [
        ("internal_ip", Action.ALERT, "10.20.30.40"),
        ("pii.ip_address_v4", Action.REDACT, "10.20.30.40"),
    ]


def test_an_alert_rule_over_a_secret_cannot_let_it_through(tmp_path: Path) -> None:
    """A custom alert whose span covers a key pair must not outrank the key's block."""
    rules = tmp_path / "dlp_rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: confidential\n    pattern: 'CONFIDENTIAL[^\\n]*'\n"
        "    action: alert\n    severity: low\n"
    )
    engine = RuleEngine.load(rules)
    key = "AKIAZ7Q3M4N5P6R2T8XW"
    text = f"CONFIDENTIAL: aws_access_key_id = {key} thanks"
    actions = {f.rule: f.action for f in engine.scan(text)}
    assert actions["confidential"] is Action.ALERT
    assert actions["secret.aws_access_key_id"] is Action.BLOCK


def test_redaction_covers_every_character_any_overlapping_rule_matched(tmp_path: Path) -> None:
    rules = tmp_path / "dlp_rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: account\n    pattern: 'ACCT-\\d{4}-\\d{4}'\n    action: redact\n"
        "  - name: tail\n    pattern: '\\d{4}-\\d{4}-[A-Z]{6}'\n    action: redact\n"
    )
    engine = RuleEngine.load(rules, enable_pii=False, enable_secrets=False)
    text = "ref ACCT-1234-5678-ABCDEF end"
    findings = engine.scan(text)
    covered = "".join(text[f.start : f.end] for f in findings if f.action is Action.REDACT)
    assert covered == "ACCT-1234-5678-ABCDEF"


def test_the_deployment_rules_win_ties_with_built_ins(
    spec_engine: RuleEngine,
) -> None:
    text = "card 4111 1111 1111 1111"
    (finding,) = spec_engine.scan(text)
    assert finding.rule == "credit_card"  # custom, score 1.0, ties with the built-in: custom first
    key = "sk-" + rand("abcdefghijklmnopqrstuvwxyz0123456789", 48)
    (finding,) = spec_engine.scan(f"key {key}")
    assert finding.action is Action.BLOCK


def test_resolution_order() -> None:
    def cand(start: int, end: int, score: float = 1.0, **kw: object) -> Candidate:
        fields: dict[str, object] = {
            "action": Action.REDACT,
            "severity": Severity.HIGH,
            "builtin": True,
            "order": 0,
        }
        fields.update(kw)
        return Candidate(start, end, score, **fields)  # type: ignore[arg-type]

    # The better one speaks, widened over what the other matched.
    assert resolve_overlaps([cand(0, 5, 0.6), cand(3, 8, 0.9)]) == [cand(0, 8, 0.9)]
    assert resolve_overlaps([cand(0, 5, builtin=True), cand(0, 5, builtin=False, order=9)]) == [
        cand(0, 5, builtin=False, order=9)
    ]
    # An alert is kept beside what it overlaps, and never outranks it.
    assert resolve_overlaps([cand(0, 5, action=Action.ALERT), cand(1, 4, action=Action.BLOCK)]) == [
        cand(0, 5, action=Action.ALERT),
        cand(1, 4, action=Action.BLOCK),
    ]
    # The stricter action wins over a higher score.
    assert resolve_overlaps([cand(0, 5, 1.0), cand(2, 8, 0.6, action=Action.BLOCK)]) == [
        cand(0, 8, 0.6, action=Action.BLOCK)
    ]
    assert resolve_overlaps([cand(0, 4, severity=Severity.LOW), cand(2, 6)]) == [cand(0, 6)]
    assert resolve_overlaps([cand(0, 4), cand(0, 9)]) == [cand(0, 9)]
    assert resolve_overlaps([cand(0, 4, order=2), cand(0, 4, order=1)]) == [cand(0, 4, order=1)]
    # A long low-ranked span loses to two short ones, which are widened to cover it.
    assert resolve_overlaps([cand(0, 20, 0.6), cand(2, 4), cand(10, 12)]) == [
        cand(0, 10),
        cand(10, 20),
    ]
    # Disjoint findings all stay, in text order.
    assert resolve_overlaps([cand(9, 12), cand(0, 3), cand(4, 6)]) == [
        cand(0, 3),
        cand(4, 6),
        cand(9, 12),
    ]


# --- backends and time -------------------------------------------------------


def test_an_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="unknown DLP backend 'pcre'"):
        RuleEngine.load(None, backend="pcre")


def _seconds(engine: RuleEngine, text: str) -> float:
    engine.scan(text)  # warm the DFA caches
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        engine.scan(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_crafted_text_takes_linear_time(engine: RuleEngine, name: str) -> None:
    small = ADVERSARIAL[name]
    large = small * 4
    t_small, t_large = _seconds(engine, small), _seconds(engine, large)
    # Linear: four times the text, about four times the time. Generous margin
    # for a busy machine; a quadratic blow-up would be sixteen times.
    assert t_large < 9 * t_small + 0.05, (name, t_small, t_large)
    assert t_large < 5.0


def test_a_set_that_thrashes_its_cache_still_reports_what_matches(engine: RuleEngine) -> None:
    noise = rand("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_.: ", 300_000)
    token = "ghp_" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 36)
    text = noise + " " + token + " end"
    assert any(
        f.rule == "secret.github_pat" and text[f.start : f.end] == token for f in engine.scan(text)
    )


def test_a_scan_s_default_action_takes_part_in_settling_overlaps(tmp_path: Path) -> None:
    """A policy's block must win over an overlapping rule's own redact, as a default block does."""
    rules = tmp_path / "dlp_rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: ticket\n    pattern: 'TICKET-\\d{6}'\n    severity: high\n"
        "  - name: six_digits\n    pattern: '\\d{6}'\n    action: redact\n    severity: high\n"
    )
    engine = RuleEngine.load(
        rules, enable_pii=False, enable_secrets=False, default_action=Action.ALERT
    )
    text = "see TICKET-123456 now"
    assert [(f.rule, f.action) for f in engine.scan(text)] == [
        ("ticket", Action.ALERT),
        ("six_digits", Action.REDACT),
    ]
    assert [(f.rule, f.action) for f in engine.scan(text, Action.BLOCK)] == [
        ("ticket", Action.BLOCK)
    ]
