"""The policy's settings: embedded Rego from POLICY_DIR, or an OPA server when OPA_URL is set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from llm_gateway.settings.declare import Section, http_url, integer, optional, seconds, text, var


def policy_path(raw: str) -> str:
    """OPA's Data API path of the decision, e.g. /v1/data/llm/authz/allow."""
    parts = raw.strip("/").split("/")
    if (
        len(parts) < 3
        or parts[:2] != ["v1", "data"]
        or not all(p.replace("_", "a").isalnum() for p in parts[2:])
    ):
        raise ValueError("expected /v1/data/<package path>/<rule>, e.g. /v1/data/llm/authz/allow")
    return "/" + "/".join(parts)


@dataclass(frozen=True, slots=True)
class PolicySettings(Section):
    """Which policy decides, and what it is told about the deployment."""

    TITLE: ClassVar[str] = "Policy"

    environment: str = var(
        "ENVIRONMENT", text, "development",
        "the policy input's context.environment (development, staging, production...)",
    )  # fmt: skip
    policy_dir: Path = var(
        "POLICY_DIR", Path, Path("policies"),
        "rego/*.rego and data/*.{json,yaml} (see docs/policy.md)",
    )  # fmt: skip
    opa_url: str | None = var(
        "OPA_URL", optional(http_url), None, "ask this OPA server instead of the embedded engine"
    )
    opa_policy_path: str = var(
        "OPA_POLICY_PATH", policy_path, "/v1/data/llm/authz/allow",
        "the decision, as OPA's Data API path (.../decision gives the object form)",
    )  # fmt: skip
    opa_timeout_ms: int = var("OPA_TIMEOUT_MS", integer(1, 60_000), 250, "OPA's time to answer")
    opa_retries: int = var("OPA_RETRIES", integer(0, 5), 1, "retries of a failed OPA call")
    cache_seconds: float = var(
        "POLICY_CACHE_SECONDS", seconds, 0.0, "OPA decisions cached by input (0: off)"
    )
    decision_cache_size: int = var(
        "POLICY_DECISION_CACHE_SIZE", integer(0, 1_000_000), 10_000,
        "embedded decisions kept by the values of the input paths the policy reads, when it "
        "reads the input by static paths and calls only pure built-ins (0: off)",
    )  # fmt: skip
    reload_seconds: float = var(
        "POLICY_RELOAD_SECONDS", seconds, 2.0,
        "how often the policy files are checked for changes (0: on SIGHUP only)",
    )  # fmt: skip
