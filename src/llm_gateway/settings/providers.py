"""Provider credentials and the models' files (config/routing_policies.yaml names the models)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from llm_gateway.settings.declare import AutoOnOff, Section, choice, optional, text, var
from llm_gateway.settings.files import CONFIG_DIR


@dataclass(frozen=True, slots=True)
class ProviderSettings(Section):
    """What the models of config/routing_policies.yaml need; a model lacking it is disabled."""

    TITLE: ClassVar[str] = "Providers"

    claude_api_key: str | None = var(
        ("CLAUDE_API_KEY", "ANTHROPIC_API_KEY"), optional(text), None,
        "Anthropic's key", secret=True,
    )  # fmt: skip
    openai_api_key: str | None = var(
        "OPENAI_API_KEY", optional(text), None, "OpenAI's key", secret=True
    )
    local_model_url: str | None = var(
        "LOCAL_MODEL_URL", optional(text), None,
        "Ollama's base URL, e.g. http://localhost:11434 (the ollama-local model needs it)",
    )  # fmt: skip
    demo_model: AutoOnOff = var(
        "DEMO_MODEL", choice(AutoOnOff), AutoOnOff.AUTO,
        "serve the built-in demo model: auto (when no other model is usable), on or off",
    )  # fmt: skip
    config_dir: Path = CONFIG_DIR.field()
