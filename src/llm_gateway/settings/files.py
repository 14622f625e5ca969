"""Where the gateway's files live: read by several sections, declared once here.

``CONFIG_DIR`` and ``DATA_DIR`` are the only variables more than one service
needs (the SQLite database, the development JWT secret and the vault key live
in ``DATA_DIR``; the routing and DLP rule files in ``CONFIG_DIR``). Each section
that needs one declares a field with ``CONFIG_DIR.field()``: the same Var, so it
is read, checked and documented once, and the service still takes only its
own section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from llm_gateway.settings.declare import Section, Var

CONFIG_DIR = Var(
    ("CONFIG_DIR",), Path, Path("config"),
    "where routing_policies.yaml, pricing.yaml, rate_limits.yaml, dlp_rules.yaml, "
    "guardrails.yaml, identity.yaml and alerts.yaml live",
)  # fmt: skip
DATA_DIR = Var(
    ("DATA_DIR",), Path, Path("data"),
    "the SQLite database, the development JWT secret and vault key",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FilesSettings(Section):
    """The directories the gateway reads its files from and keeps its data in."""

    TITLE: ClassVar[str] = "Files"

    config_dir: Path = CONFIG_DIR.field()
    data_dir: Path = DATA_DIR.field()
