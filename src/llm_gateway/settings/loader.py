"""The gateway's settings, in sections, read from the environment and ``.env``.

Values come from the process environment, then from ``.env`` in the working
directory for anything the environment does not set. Every value is parsed and
checked here, at start-up; every bad one is listed at once, each naming the
variable, where it came from (``environment``, or the file and line) and what
was expected.

Adding a section is a one-class change: write a frozen dataclass of
``var(...)`` fields (see :mod:`llm_gateway.settings.declare`) and add it as a
field of :class:`Settings`. The loader, ``settings_variables()``, the README's
reference and the tests that hold ``.env.example`` to the declarations all
find it there.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from dotenv import dotenv_values

from llm_gateway.settings.auth import AuthSettings
from llm_gateway.settings.declare import Section, Var, var_of
from llm_gateway.settings.dlp import DlpSettings
from llm_gateway.settings.files import FilesSettings
from llm_gateway.settings.hitl import HitlSettings
from llm_gateway.settings.limits import LimitSettings
from llm_gateway.settings.metrics import MetricsSettings
from llm_gateway.settings.policy import PolicySettings
from llm_gateway.settings.providers import ProviderSettings
from llm_gateway.settings.routing import RoutingSettings
from llm_gateway.settings.server import HttpSettings, LogSettings
from llm_gateway.settings.storage import StateSettings, StorageSettings
from llm_gateway.settings.tracing import TracingSettings


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists each problem."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every section; a service is handed only its own (``settings.dlp``, ``settings.auth``)."""

    files: FilesSettings = field(default_factory=FilesSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    state: StateSettings = field(default_factory=StateSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    hitl: HitlSettings = field(default_factory=HitlSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    dlp: DlpSettings = field(default_factory=DlpSettings)


def sections() -> dict[str, type[Section]]:
    """``Settings``' field names and their section classes, in declaration order."""
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def declared() -> Iterator[tuple[str, Var[Any]]]:
    """Each Var once, with the first section that reads it (where it is documented)."""
    seen: set[int] = set()
    for name, cls in sections().items():
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            v = var_of(f)
            if id(v) not in seen:
                seen.add(id(v))
                yield name, v


def settings_variables() -> list[str]:
    """Every environment variable the gateway reads (for docs and tests)."""
    return [name for _, v in declared() for name in v.names]


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read settings from ``environ`` (default: the process) and then ``env_file``.

    Empty values count as unset, so ``cp .env.example .env`` changes nothing.
    """
    env = dict(os.environ if environ is None else environ)
    file_values: dict[str, str] = {}
    file_lines: dict[str, int] = {}
    if env_file is not None and env_file.is_file():
        file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        file_lines = _assignment_lines(env_file.read_text())

    values: dict[int, Any] = {}
    problems: list[str] = []
    for _, v in declared():
        for name in v.names:
            if env.get(name, "").strip():
                raw, origin = env[name], "environment"
            elif file_values.get(name, "").strip():
                raw, origin = file_values[name], f"{env_file}:{file_lines.get(name, '?')}"
            else:
                continue
            try:
                values[id(v)] = v.parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{origin}: {name}={_shown(v, name, raw)}: {exc}")
            break
    _raise_if(problems)
    built = {name: _build(cls, values) for name, cls in sections().items()}
    _raise_if([p for section in built.values() for p in section.problems()])
    return Settings(**built)  # type: ignore[arg-type]


_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=", re.MULTILINE)


def _assignment_lines(content: str) -> dict[str, int]:
    """The line each variable of a ``.env`` file is set on (the last, as dotenv's value)."""
    return {
        m.group(1): content.count("\n", 0, m.start()) + 1 for m in _ASSIGNMENT.finditer(content)
    }


def _build(cls: type[Section], values: Mapping[int, Any]) -> Section:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    given = {f.name: values[id(var_of(f))] for f in fields if id(var_of(f)) in values}
    return cls(**given)


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))


def _shown(v: Var[Any], name: str, raw: str) -> str:
    """Quote a bad value for an error message, unless it may be a secret."""
    if v.secret or any(word in name for word in ("SECRET", "PASSWORD", "KEY")):
        return "<hidden>"
    return repr(raw)
