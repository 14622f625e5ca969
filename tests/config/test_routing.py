"""The routing file's checks across sections: each names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.config import ConfigError, load_gateway_config
from llm_gateway.settings import load_settings

MODELS = """routing:
  models:
    a: {endpoint: 'http://127.0.0.1:9/v1'}
    b: {endpoint: 'http://127.0.0.1:9/v1'}
"""


def _problems(tmp_path: Path, text: str) -> str:
    (tmp_path / "routing_policies.yaml").write_text(text)
    settings = load_settings({"CONFIG_DIR": str(tmp_path)}, env_file=None).providers
    with pytest.raises(ConfigError) as info:
        load_gateway_config(settings)
    return str(info.value)


CASES = [
    (
        "    c: {endpoint: 'http://127.0.0.1:9/v1', endpoints: {mars: 'http://127.0.0.1:8/v1'}}\n",
        5,
        "routing.models.c.endpoints.mars: unknown region (known: none is defined",
    ),
    (
        "  regions:\n    eu: {networks: ['10.1.0.0/16']}\n",
        6,
        "routing.regions.eu: no model has an endpoint there",
    ),
    (
        "    c: {endpoint: 'http://127.0.0.1:9/v1', endpoints: {eu: 'http://127.0.0.1:8/v1'}}\n"
        "  regions:\n    eu: {nearest: [us]}\n",
        7,
        "routing.regions.eu.nearest.0: unknown region 'us'",
    ),
    (
        "    auto: {endpoint: 'http://127.0.0.1:9/v1'}\n",
        5,
        "routing.models.auto: 'auto' is reserved",
    ),
    (
        "  fallback_chains:\n    auto: [a]\n",
        6,
        "routing.fallback_chains.auto: 'auto' is reserved",
    ),
    (
        "  fallback_chains:\n    a: [b]\n",
        6,
        "routing.fallback_chains.a: a chain cannot take the name of the model 'a'",
    ),
    (
        "  fallback_chains:\n    main: []\n",
        6,
        "routing.fallback_chains.main: a chain needs at least one model",
    ),
    (
        "  fallback_chains:\n    main: [a, b, a]\n",
        6,
        "routing.fallback_chains.main: a chain names a model twice",
    ),
    (
        "    c: {endpoint: 'http://127.0.0.1:9/v1', fallbacks: [c]}\n",
        5,
        "routing.models.c.fallbacks: a model cannot be its own fallback",
    ),
    (
        "    c: {endpoint: 'http://127.0.0.1:9/v1', fallbacks: [x]}\n",
        5,
        "routing.models.c.fallbacks.0: unknown model 'x'",
    ),
    (
        "  capability_routing:\n    rules:\n      - {match: {user_tier: free}, route_to: x}\n",
        7,
        "routing.capability_routing.rules.0.route_to: unknown model 'x'",
    ),
    (
        "  experiments:\n    - {name: e, traffic_split: {a: 70, b: 20}}\n",
        6,
        "routing.experiments.0.traffic_split: the split sums to 90, not 100",
    ),
]


@pytest.mark.parametrize(("addition", "line", "expected"), CASES)
def test_a_mistake_across_sections_names_its_place(
    tmp_path: Path, addition: str, line: int, expected: str
) -> None:
    problems = _problems(tmp_path, MODELS + addition)
    assert f"routing_policies.yaml:{line}: {expected}" in problems


def test_weights_that_sum_to_zero_are_refused_for_the_weighted_strategy(tmp_path: Path) -> None:
    text = MODELS.replace("'http://127.0.0.1:9/v1'}", "'http://127.0.0.1:9/v1', weight: 0}")
    assert "routing.models: the weights sum to zero" in _problems(tmp_path, text)
    ok = text.replace("routing:\n", "routing:\n  default_strategy: round_robin\n")
    (tmp_path / "routing_policies.yaml").write_text(ok)
    settings = load_settings({"CONFIG_DIR": str(tmp_path)}, env_file=None).providers
    assert set(load_gateway_config(settings).deployments) == {"a", "b"}
