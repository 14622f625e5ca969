from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.config import ConfigError, load_gateway_config
from llm_gateway.config.routing import Provider
from llm_gateway.settings import load_settings

REPO = Path(__file__).parents[2]


def _settings(config_dir: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({"CONFIG_DIR": str(config_dir), **env}, env_file=None).providers


def _write(tmp_path: Path, routing: str) -> Path:
    (tmp_path / "routing_policies.yaml").write_text(routing)
    return tmp_path


def test_the_shipped_config_loads_and_disables_models_without_keys() -> None:
    config = load_gateway_config(_settings(REPO / "config"))
    by_name = config.deployments
    assert by_name["claude-sonnet"].provider is Provider.ANTHROPIC
    assert by_name["gpt-4"].provider is Provider.OPENAI
    assert by_name["ollama-local"].provider is Provider.OLLAMA
    assert by_name["claude-sonnet"].disabled_reason == "CLAUDE_API_KEY not set"
    assert by_name["ollama-local"].disabled_reason == "LOCAL_MODEL_URL not set"
    assert config.enabled() == []


def test_keys_and_local_url_enable_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_MODEL_URL", "http://127.0.0.1:11434")
    settings = _settings(REPO / "config", CLAUDE_API_KEY="k-test")
    config = load_gateway_config(settings)
    enabled = {d.name for d in config.enabled()}
    assert enabled == {"claude-sonnet", "ollama-local"}
    assert config.deployments["claude-sonnet"].api_key == "k-test"
    assert config.deployments["claude-sonnet"].price is not None


def test_the_specification_example_loads_unchanged(tmp_path: Path) -> None:
    spec_example = (REPO / "tests" / "config" / "spec_routing_policies.yaml").read_text()
    config = load_gateway_config(_settings(_write(tmp_path, spec_example)))
    assert set(config.deployments) == {"claude-sonnet", "gpt-4", "ollama-local"}
    assert config.routing.routing.experiments[0].traffic_split == {"claude-sonnet": 70, "gpt-4": 30}


def test_errors_name_file_line_field_and_expectation(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "routing:\n"
        "  models:\n"
        "    m1:\n"
        "      endpoint: http://127.0.0.1:9/v1\n"
        "      timeout_ms: soon\n"
        "      weigth: 3\n",
    )
    with pytest.raises(ConfigError) as info:
        load_gateway_config(_settings(tmp_path))
    problems = info.value.problems
    path = tmp_path / "routing_policies.yaml"
    assert any(
        p.startswith(f"{path}:5: routing.models.m1.timeout_ms:") and "integer" in p
        for p in problems
    )
    assert any(
        p.startswith(f"{path}:6: routing.models.m1.weigth:") and "not permitted" in p
        for p in problems
    )


def test_unknown_model_in_a_fallback_chain_is_an_error(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "routing:\n"
        "  models:\n"
        "    a: {endpoint: 'http://127.0.0.1:9/v1'}\n"
        "  fallback_chains:\n"
        "    main: [a, b]\n",
    )
    with pytest.raises(ConfigError) as info:
        load_gateway_config(_settings(tmp_path))
    assert "routing.fallback_chains.main.1: unknown model 'b'" in str(info.value)
    assert ":5:" in str(info.value)


def test_yaml_syntax_errors_and_duplicates_name_the_line(tmp_path: Path) -> None:
    _write(tmp_path, "routing:\n  models: [\n")
    with pytest.raises(ConfigError, match=r"routing_policies.yaml:\d+: not valid YAML"):
        load_gateway_config(_settings(tmp_path))
    _write(tmp_path, "routing:\n  models: {}\n  models: {}\n")
    with pytest.raises(ConfigError, match=r"routing_policies.yaml:3: duplicate key 'models'"):
        load_gateway_config(_settings(tmp_path))


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_gateway_config(_settings(tmp_path))


def test_secret_values_are_not_echoed(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "routing:\n  models:\n    m:\n      endpoint: http://127.0.0.1:9/v1\n"
        "      api_key: [sk-secret-value]\n",
    )
    with pytest.raises(ConfigError) as info:
        load_gateway_config(_settings(tmp_path))
    assert "sk-secret-value" not in str(info.value)
    assert "api_key" in str(info.value)


@pytest.mark.parametrize(
    ("endpoint", "provider"),
    [
        ("https://api.anthropic.com/v1", Provider.ANTHROPIC),
        ("https://api.openai.com/v1", Provider.OPENAI),
        ("http://ollama:11434", Provider.OLLAMA),
        ("http://10.0.0.5:11434", Provider.OLLAMA),
        ("http://10.0.0.5:11434/v1", Provider.OPENAI_COMPATIBLE),
        ("http://vllm.internal:8000/v1", Provider.OPENAI_COMPATIBLE),
    ],
)
def test_provider_is_inferred_from_the_endpoint(
    tmp_path: Path, endpoint: str, provider: Provider
) -> None:
    _write(tmp_path, f"routing:\n  models:\n    m:\n      endpoint: {endpoint}\n      api_key: k\n")
    assert load_gateway_config(_settings(tmp_path)).deployments["m"].provider is provider
