"""Stand-ins for secrets (documentation, masks, templates): low alerts, never blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Severity
from llm_gateway.dlp.placeholders import is_stand_in
from tests.dlp.samples import SECRET_SAMPLES

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.load(REPO / "config" / "dlp_rules.yaml", default_action=Action.BLOCK)


@pytest.mark.parametrize(
    "value",
    [
        "ghp_" + "x" * 36,
        "AKIA" + "X" * 16,
        "hf_" + "x" * 34,
        "AKIAIOSFODNN7EXAMPLE",
        "sk_live_" + "0" * 24,
        "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
        "sk-proj-<your-key-goes-here>",
        "token-${API_TOKEN}",
        "glpat-" + "ab" * 12,
        "-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "sk-ant-api03-YOUR_API_KEY",
    ],
)
def test_stand_ins_are_recognised(value: str) -> None:
    assert is_stand_in(value)


@pytest.mark.parametrize("rule", sorted(SECRET_SAMPLES))
def test_real_looking_tokens_are_not_stand_ins(rule: str) -> None:
    _, secret = SECRET_SAMPLES[rule]
    assert not is_stand_in(secret), rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("export GITHUB_TOKEN=ghp_" + "x" * 36, "secret.github_pat"),
        ("aws_access_key_id = AKIA" + "X" * 16, "secret.aws_access_key_id"),
        ("HF_TOKEN=hf_" + "x" * 34, "secret.huggingface_token"),
        (
            "key.pem:\n-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----\n",
            "secret.private_key",
        ),
        ("the spec's own rule: sk-" + "x" * 40, "api_key"),
    ],
)
def test_documentation_is_reported_low_and_never_blocked(
    engine: RuleEngine, text: str, rule: str
) -> None:
    findings = engine.scan(text)
    assert [(f.rule, f.action, f.severity) for f in findings] == [
        (rule, Action.ALERT, Severity.LOW)
    ]


def test_a_real_token_beside_a_placeholder_still_blocks(engine: RuleEngine) -> None:
    real, _ = SECRET_SAMPLES["secret.github_pat"]
    text = "docs: ghp_" + "x" * 36 + "\nmine: " + real
    assert sorted((f.action, f.severity) for f in engine.scan(text)) == [
        (Action.ALERT, Severity.LOW),
        (Action.BLOCK, Severity.CRITICAL),
    ]
