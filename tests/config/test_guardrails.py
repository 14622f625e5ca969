"""``config/guardrails.yaml``: the specification's file loads unchanged; a mistake names its
place."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.config import ConfigError, GatewayConfig, load_gateway_config
from llm_gateway.settings import load_settings

REPO = Path(__file__).parents[2]
ROUTING = "routing:\n  models:\n    a: {endpoint: 'http://127.0.0.1:9/v1'}\n"


def _load(tmp_path: Path, guardrails: str) -> GatewayConfig:
    (tmp_path / "routing_policies.yaml").write_text(ROUTING)
    (tmp_path / "guardrails.yaml").write_text(guardrails)
    settings = load_settings({"CONFIG_DIR": str(tmp_path)}, env_file=None).providers
    return load_gateway_config(settings)


def test_the_specification_file_loads_unchanged(tmp_path: Path) -> None:
    spec = (REPO / "tests" / "config" / "spec_guardrails.yaml").read_text()
    guardrails = _load(tmp_path, spec).guardrails.guardrails
    rules = guardrails.hitl.confirmation_required
    assert [r.pattern for r in rules] == [
        "delete|remove|terminate|destroy", "scale|resize|modify", "iam|security-group|secret",
    ]  # fmt: skip
    assert (rules[0].environments, rules[0].cooldown_seconds) == (["production", "staging"], 5)
    assert (rules[1].min_cost_impact_usd, rules[2].always, rules[2].require_mfa) == (50, True, True)
    assert guardrails.grounding.confidence_threshold == 0.85
    assert "probably" in guardrails.validation.blocked_phrases


def test_no_file_means_nothing_is_held(tmp_path: Path) -> None:
    (tmp_path / "routing_policies.yaml").write_text(ROUTING)
    settings = load_settings({"CONFIG_DIR": str(tmp_path)}, env_file=None).providers
    guardrails = load_gateway_config(settings).guardrails.guardrails
    assert (guardrails.hitl.enabled, guardrails.grounding.enabled) == (False, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "guardrails:\n  hitl:\n    confirmation_required:\n      - pattern: '(?<=x)delete'\n",
            "guardrails.yaml:4: guardrails.hitl.confirmation_required.0.pattern:",
        ),
        (
            "guardrails:\n  hitl:\n    confirmation_required:\n      - {pattern: x, cooldown: 5}\n",
            "guardrails.hitl.confirmation_required.0.cooldown:",
        ),
        (
            "guardrails:\n  grounding:\n    confidence_threshold: 1.5\n",
            "guardrails.yaml:3: guardrails.grounding.confidence_threshold:",
        ),
        (
            "guardrails:\n  grounding:\n    action: warn\n",
            "guardrails.yaml:3: guardrails.grounding.action:",
        ),
        (
            "guardrails:\n  grounding:\n    retry: 3\n",
            "guardrails.yaml:3: guardrails.grounding.retry:",
        ),
        (
            "guardrails:\n  validation:\n    blocked_phrases: ['I think', '...']\n",
            "guardrails.yaml:3: guardrails.validation.blocked_phrases:",
        ),
        (
            "guardrails:\n  validation:\n    flag_speculation: true\n",
            "guardrails.validation.flag_speculation:",
        ),
    ],
)
def test_a_mistake_names_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert expected in str(raised.value)
