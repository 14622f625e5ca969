"""``config/alerts.yaml``: optional; loaded with its variables; a mistake names file, line and
field, and never shows a webhook's URL or routing key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.config import ConfigError, GatewayConfig, load_gateway_config
from llm_gateway.settings import load_settings

ROUTING = "routing:\n  models:\n    a: {endpoint: 'http://127.0.0.1:9/v1'}\n"
SECRET_URL = "https://hooks.slack.com/services/T000/B000/s3cr3tT0k3n"
GOOD = """
alerts:
  dedup_seconds: 120
  confirmation_stale_seconds: 900
  destinations:
    security-slack:
      format: slack
      url: "${ALERTS_TEST_SLACK_URL}"
      events: [dlp_block, policy_error]
    oncall:
      format: pagerduty
      url: "https://events.pagerduty.com/v2/enqueue"
      routing_key: "${ALERTS_TEST_PD_KEY}"
      events: [breaker_open, audit_spool, confirmation_stale]
      max_per_minute: 5
"""


def _load(tmp_path: Path, alerts: str | None) -> GatewayConfig:
    (tmp_path / "routing_policies.yaml").write_text(ROUTING)
    if alerts is not None:
        (tmp_path / "alerts.yaml").write_text(alerts)
    settings = load_settings({"CONFIG_DIR": str(tmp_path)}, env_file=None).providers
    return load_gateway_config(settings)


def test_no_file_means_no_destination(tmp_path: Path) -> None:
    alerts = _load(tmp_path, None).alerts
    assert (alerts.destinations, dict(alerts.disabled)) == ((), {})


def test_the_file_loads_with_its_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTS_TEST_SLACK_URL", SECRET_URL)
    monkeypatch.setenv("ALERTS_TEST_PD_KEY", "k" * 32)
    alerts = _load(tmp_path, GOOD).alerts
    slack, pagerduty = alerts.destinations
    assert (slack.name, slack.format, slack.url) == ("security-slack", "slack", SECRET_URL)
    assert slack.events == {"dlp_block", "policy_error"}
    assert (pagerduty.routing_key, pagerduty.max_per_minute) == ("k" * 32, 5)
    assert (alerts.dedup_s, alerts.confirmation_stale_s) == (120, 900)
    assert SECRET_URL not in repr(alerts)


def test_a_destination_whose_variable_is_unset_is_disabled_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERTS_TEST_SLACK_URL", raising=False)
    monkeypatch.setenv("ALERTS_TEST_PD_KEY", "k" * 32)
    alerts = _load(tmp_path, GOOD).alerts
    assert [d.name for d in alerts.destinations] == ["oncall"]
    assert dict(alerts.disabled) == {"security-slack": "ALERTS_TEST_SLACK_URL not set"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "alerts:\n  destinations:\n    s:\n      format: teams\n      url: https://x\n"
            "      events: [dlp_block]\n",
            "alerts.yaml:4: alerts.destinations.s.format:",
        ),
        (
            "alerts:\n  destinations:\n    s:\n      format: slack\n      url: https://x\n"
            "      events: [dlp_block, dlp_blok]\n",
            "alerts.yaml:6: alerts.destinations.s.events.1:",
        ),
        (
            "alerts:\n  destinations:\n    s:\n      format: slack\n      url: https://x\n"
            "      events: []\n",
            "alerts.yaml:6: alerts.destinations.s.events:",
        ),
        (
            "alerts:\n  destinations:\n    p:\n      format: pagerduty\n      url: https://x\n"
            "      events: [breaker_open]\n",
            "alerts.yaml:4: alerts.destinations.p: Value error, a pagerduty destination needs",
        ),
        (
            "alerts:\n  dedup_seconds: -1\n",
            "alerts.yaml:2: alerts.dedup_seconds:",
        ),
        (
            "alerts:\n  destinations:\n    s:\n      format: slack\n      url: ''\n"
            "      events: [dlp_block]\n",
            "alerts.yaml:5: alerts.destinations.s.url: is empty",
        ),
        (
            "alerts:\n  destinations:\n    s: {format: slack, url: 'https://x',"
            " events: [dlp_block], retries: 3}\n",
            "alerts.yaml:3: alerts.destinations.s.retries: Extra inputs",
        ),
    ],
)
def test_a_mistake_names_the_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert expected in str(caught.value)


def test_an_invalid_url_or_routing_key_is_never_echoed(tmp_path: Path) -> None:
    leaked = "ftp://hooks.example/s3cr3tT0k3n"
    text = (
        "alerts:\n  destinations:\n    s:\n      format: slack\n"
        f"      url: '{leaked}'\n      events: [dlp_block]\n"
        "    p:\n      format: pagerduty\n      url: https://x\n"
        "      routing_key: {nested: s3cr3tK3y}\n      events: [breaker_open]\n"
    )
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    said = str(caught.value)
    assert "alerts.yaml:5: alerts.destinations.s.url: Value error, expected an http" in said
    assert "alerts.yaml:10: alerts.destinations.p.routing_key:" in said
    assert "s3cr3t" not in said


def test_the_example_file_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", SECRET_URL)
    monkeypatch.setenv("PD_ROUTING_KEY", "k" * 32)
    example = Path(__file__).resolve().parents[2] / "config" / "alerts.example.yaml"
    alerts = _load(tmp_path, example.read_text()).alerts
    assert [d.name for d in alerts.destinations] == ["security-slack", "oncall"]
    assert not alerts.disabled
