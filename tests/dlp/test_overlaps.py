"""Overlapping rules: no custom rule degrades a built-in detector, and no text is left
partly redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Finding
from llm_gateway.dlp.outbound import redact_with_markers
from tests.dlp.samples import POSITIVES, SECRET_SAMPLES, iban, luhn_complete

REPO = Path(__file__).parents[2]
SPEC_RULES = REPO / "config" / "dlp_rules.yaml"
_STRICT = {Action.ALERT: 0, Action.REDACT: 1, Action.BLOCK: 2}


def _luhn_iban() -> str:
    """An Austrian IBAN whose sixteen-digit account number also passes Luhn, grouped in
    fours, so that the specification's Luhn-only ``credit_card`` rule matches inside it."""
    bban = luhn_complete("1", 16)
    compact = iban("AT", bban)
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


LUHN_IBAN = _luhn_iban()
TEXTS = [
    *(text for _, _, text, _ in POSITIVES),
    *(text for text, _ in SECRET_SAMPLES.values()),
    f"IBAN {LUHN_IBAN}",
    f"please wire to {LUHN_IBAN} today",
    "ssh to 10.20.30.40 and 10.1.2.3, then card 4111 1111 1111 1111",
]


@pytest.fixture(scope="module")
def builtin() -> RuleEngine:
    return RuleEngine.load(None)


@pytest.fixture(scope="module")
def spec() -> RuleEngine:
    return RuleEngine.load(SPEC_RULES)


def test_the_luhn_iban_really_is_matched_by_the_spec_card_rule(spec: RuleEngine) -> None:
    (card_rule,) = [r for r in spec.rules if r.name == "credit_card"]
    alone = RuleEngine([card_rule])
    assert [f.rule for f in alone.scan(f"IBAN {LUHN_IBAN}")] == ["credit_card"]


def test_an_iban_is_named_and_redacted_whole_despite_the_card_rule(spec: RuleEngine) -> None:
    text = f"IBAN {LUHN_IBAN}"
    (finding,) = spec.scan(text)
    assert (finding.entity, text[finding.start : finding.end]) == ("IBAN_CODE", LUHN_IBAN)
    assert redact_with_markers(text, [finding]) == "IBAN <IBAN_REDACTED>"


@pytest.mark.parametrize("text", TEXTS)
def test_the_specification_rules_never_degrade_a_built_in(
    builtin: RuleEngine, spec: RuleEngine, text: str
) -> None:
    """Whatever a built-in finds alone is still covered, with the spec's rules on, by a
    finding at least as strict, of the same entity, or of a custom rule on exactly the same
    span (at equal confidence the deployment's own rule speaks: that is a tie, not a loss)."""
    with_spec = spec.scan(text)
    for expected in builtin.scan(text):
        assert any(
            f.start <= expected.start
            and f.end >= expected.end
            and _STRICT[f.action] >= _STRICT[expected.action]
            and (f.entity == expected.entity or (f.start, f.end) == (expected.start, expected.end))
            for f in with_spec
        ), (text, expected)


def _overlapping_rules(tmp_path: Path) -> RuleEngine:
    rules = tmp_path / "dlp_rules.yaml"
    rules.write_text(
        SPEC_RULES.read_text()
        + "\n  - name: account_tail\n    pattern: '\\d{4} \\d{4} \\d{2}\\b'\n    action: redact\n"
        "  - name: key_head\n    pattern: 'AKIA[A-Z0-9]{6}'\n    action: redact\n"
        "  - name: host_part\n    pattern: '\\d+\\.\\d+\\.\\d+'\n    action: redact\n"
    )
    return RuleEngine.load(rules)


def _acting(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.action is not Action.ALERT]


@pytest.mark.parametrize("text", [*TEXTS, "mixed: AKIAQ3ZP7XK2M4NB8VR6 at 10.9.8.7 paid"])
def test_no_text_is_ever_returned_partly_redacted(tmp_path: Path, text: str) -> None:
    """Every character that any acting rule matches on its own is covered by the
    findings of the full scan, so the redacted text shows none of it."""
    engine = _overlapping_rules(tmp_path)
    findings = _acting(engine.scan(text))
    covered = bytearray(len(text))
    for f in findings:
        covered[f.start : f.end] = b"\x01" * (f.end - f.start)
    for rule in engine.rules:
        for alone in _acting(RuleEngine([rule], default_action=engine.default_action).scan(text)):
            assert all(covered[alone.start : alone.end]), (rule.name, text)
    redacted = redact_with_markers(text, findings)
    for f in findings:
        assert text[f.start : f.end] not in redacted or len(text[f.start : f.end]) < 4
