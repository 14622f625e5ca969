"""``config/rate_limits.yaml``: the specification's format, and the optional additions."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.config import ConfigError
from llm_gateway.config.limits import Limits, LimitsFile, tier_disagreements
from llm_gateway.config.loader import load_yaml, validate

# The specification's file, verbatim.
SPEC = """\
tiers:
  free:
    requests_per_minute: 10
    tokens_per_month: 100000
    models: ["gpt-3.5-turbo"]

  premium:
    requests_per_minute: 100
    tokens_per_month: 1000000
    models: ["claude-3-sonnet", "gpt-4"]

  enterprise:
    requests_per_minute: 1000
    tokens_per_month: unlimited
    models: ["*"]
"""


def load(tmp_path: Path, text: str) -> LimitsFile:
    path = tmp_path / "rate_limits.yaml"
    path.write_text(text)
    return validate(LimitsFile, load_yaml(path))


def test_the_specifications_file_loads_unchanged(tmp_path: Path) -> None:
    limits = load(tmp_path, SPEC)
    assert limits.tiers["free"].requests_per_minute == 10
    assert limits.tiers["enterprise"].tokens_per_month == "unlimited"
    assert limits.tiers["premium"].models == ["claude-3-sonnet", "gpt-4"]
    assert limits.default_tier is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("tiers: {free: {requests_per_minute: 1.5}}", "tiers.free.requests_per_minute"),
        ("tiers: {free: {tokens_per_month: '100'}}", "tiers.free.tokens_per_month"),
        ("tiers: {free: {cost_per_month_usd: -1}}", "tiers.free.cost_per_month_usd"),
        ("tiers: {free: {queue: {max_wait_ms: 0}}}", "tiers.free.queue.max_wait_ms"),
        ("tiers: {free: {}}\ndefault_tier: gold", "default_tier 'gold' is not a tier"),
        ("scopes: {region: {}}", "scopes.region"),
        ("tiers: [free]", "tiers"),
    ],
)
def test_a_bad_value_names_the_file_line_and_field(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert str(tmp_path / "rate_limits.yaml") in str(info.value)
    assert named in str(info.value)


def test_a_listed_id_takes_what_it_does_not_set_from_the_default() -> None:
    base = Limits(requests_per_minute=100, tokens_per_month=5000)
    assert Limits(tokens_per_month="unlimited").over(base) == Limits(
        requests_per_minute=100, tokens_per_month="unlimited"
    )


def test_tier_disagreements_name_each_difference(tmp_path: Path) -> None:
    limits = load(tmp_path, SPEC)
    access = {"tiers": {"free": {"models": ["gpt-3.5-turbo"]},
                        "premium": {"models": ["gpt-4", "gpt-4o"]},
                        "staff": {"models": ["*"]}}}  # fmt: skip
    assert tier_disagreements(limits, {"access": access}["access"]) == [
        "tier 'enterprise' is in rate_limits.yaml but not in data.access.tiers",
        "tier 'staff' is in data.access.tiers but not in rate_limits.yaml",
        "tier 'premium': 'claude-3-sonnet' is in rate_limits.yaml only",
        "tier 'premium': 'gpt-4o' is in data.access.tiers only",
    ]
    assert tier_disagreements(limits, None) == [
        "the policy's data has no access.tiers to compare the tiers with"
    ]
