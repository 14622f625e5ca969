"""DLP settings: which detectors run, what a finding does, how values are replaced and kept.

Typed with the DLP package's own enums (``Action``, ``Operator``), imported from
``dlp.findings``, which imports nothing of the gateway's: the value that reaches
the rule engine is the one parsed here, not a string parsed again downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from llm_gateway.dlp.findings import Action, Operator
from llm_gateway.settings.declare import (
    AutoOnOff,
    Section,
    boolean,
    choice,
    existing_file,
    integer,
    optional,
    text,
    var,
)
from llm_gateway.settings.files import CONFIG_DIR, DATA_DIR
from llm_gateway.state.factory import StateBackend


class DlpBackend(StrEnum):
    """The regex prefilter (``dlp.backends``); hyperscan is the ``hyperscan`` extra."""

    RE2 = "re2"
    HYPERSCAN = "hyperscan"


def overrides(raw: str) -> tuple[tuple[str, Operator], ...]:
    """``PERSON=token,US_SSN=mask``: an operator per rule name, label or entity."""
    names = ", ".join(op.value for op in Operator)
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, operator = item.partition("=")
        if not sep or not name.strip() or operator.strip() not in set(Operator):
            raise ValueError(f"expected NAME=OPERATOR pairs, operators: {names}")
        pairs.append((name.strip(), Operator(operator.strip())))
    return tuple(pairs)


def regions(raw: str) -> tuple[str, ...]:
    """``US,GB,DE``: ISO 3166 alpha-2 region codes, at least one."""
    codes = tuple(dict.fromkeys(part.strip().upper() for part in raw.split(",") if part.strip()))
    if not codes or any(len(code) != 2 or not code.isalpha() for code in codes):
        raise ValueError("expected comma-separated two-letter region codes, e.g. US,GB,DE")
    return codes


@dataclass(frozen=True, slots=True)
class DlpSettings(Section):
    """Sensitive data in prompts and answers."""

    TITLE: ClassVar[str] = "DLP"

    enabled: bool = var("DLP_ENABLED", boolean, True, "scan prompts (and answers) at all")
    mode: Action = var(
        "DLP_MODE", choice(Action), Action.REDACT,
        "a finding's default action: block, redact or alert (a rule or the policy may change it)",
    )  # fmt: skip
    enable_pii: bool = var("DLP_ENABLE_PII", boolean, True, "the built-in PII rules, and NER")
    enable_secrets: bool = var("DLP_ENABLE_SECRETS", boolean, True, "the built-in secret rules")
    rules_file: Path | None = var(
        "DLP_RULES_FILE", optional(existing_file), None,
        "the deployment's own rules (default: CONFIG_DIR/dlp_rules.yaml when it exists)",
    )  # fmt: skip
    backend: DlpBackend = var(
        "DLP_BACKEND", choice(DlpBackend), DlpBackend.RE2,
        "re2, or hyperscan (pip install '.[hyperscan]')",
    )  # fmt: skip
    scan_responses: bool = var("DLP_SCAN_RESPONSES", boolean, True, "scan answers too")
    on_error: Action = var(
        "DLP_ON_ERROR", choice(Action, Action.BLOCK, Action.ALERT), Action.BLOCK,
        "a detector that fails: block (fail closed) or alert (NER past its budget: ner_partial)",
    )  # fmt: skip
    stream_holdback: int = var(
        "DLP_STREAM_HOLDBACK", integer(0, 65536), 64,
        "characters of a streamed answer held back until scanned",
    )  # fmt: skip
    stream_holdback_max: int = var(
        "DLP_STREAM_HOLDBACK_MAX", integer(0, 1 << 20), 8192,
        "the longest hold while a secret's start is still arriving",
    )  # fmt: skip
    ner: AutoOnOff = var(
        "DLP_NER", choice(AutoOnOff), AutoOnOff.AUTO,
        "names and places: auto (when installed), on (required) or off",
    )  # fmt: skip
    ner_max_chars: int = var(
        "DLP_NER_MAX_CHARS", integer(1, 10_000_000), 50_000,
        "most characters of one request NER reads; the rest is reported (ner: partial)",
    )  # fmt: skip
    ner_timeout_ms: int = var(
        "DLP_NER_TIMEOUT_MS", integer(1, 600_000), 3000,
        "NER's base time budget per request, before it grows with the text",
    )  # fmt: skip
    ner_timeout_per_kchar_ms: int = var(
        "DLP_NER_TIMEOUT_PER_KCHAR_MS", integer(0, 60_000), 50,
        "budget added per 1000 characters, divided by DLP_NER_WORKERS",
    )  # fmt: skip
    ner_timeout_max_ms: int = var(
        "DLP_NER_TIMEOUT_MAX_MS", integer(1, 600_000), 15_000,
        "the ceiling of NER's time budget per request",
    )  # fmt: skip
    ner_all_caps: bool = var(
        "DLP_NER_ALL_CAPS", boolean, False,
        "also find ALL-CAPS names (title-cased for the model; more false positives)",
    )  # fmt: skip
    ner_workers: int = var("DLP_NER_WORKERS", integer(1, 64), 1, "NER worker processes")
    ner_caller_chars: int = var(
        "DLP_NER_CALLER_CHARS", integer(1, 100_000_000), 200_000,
        "NER work one caller may have waiting; more is a 429",
    )  # fmt: skip
    phone_regions: tuple[str, ...] = var(
        "DLP_PHONE_REGIONS", regions, ("US", "GB", "DE", "FR", "IN", "CN", "BR"),
        "regions whose national phone formats (no +country code) are recognised",
    )  # fmt: skip
    operator: Operator = var(
        "DLP_OPERATOR", choice(Operator), Operator.REPLACE,
        "how redacted values are replaced: replace, token, mask, hash or synthetic",
    )  # fmt: skip
    operator_overrides: tuple[tuple[str, Operator], ...] = var(
        "DLP_OPERATOR_OVERRIDES", overrides, (),
        "an operator per rule, label or entity, e.g. PERSON=token,CREDIT_CARD=mask",
    )  # fmt: skip
    vault: StateBackend = var(
        "DLP_VAULT", choice(StateBackend), StateBackend.MEMORY,
        "where reversible tokens live: memory, or redis (needs DLP_VAULT_KEY); in the shared "
        "state store when it names STATE_BACKEND",
    )  # fmt: skip
    vault_key: str | None = var(
        "DLP_VAULT_KEY", optional(text), None,
        "base64 of 32 random bytes (default: a key kept in DATA_DIR)", secret=True,
    )  # fmt: skip
    vault_ttl: int = var(
        "DLP_VAULT_TTL", integer(1, 365 * 86400), 86400, "seconds a reversible token lives"
    )
    config_dir: Path = CONFIG_DIR.field()
    data_dir: Path = DATA_DIR.field()

    def problems(self) -> list[str]:
        if self.vault is StateBackend.REDIS and not self.vault_key:
            return ["DLP_VAULT=redis needs DLP_VAULT_KEY: every replica must open the same vault"]
        return []
