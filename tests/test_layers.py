"""The import layers of ``llm_gateway``, checked on the source so a wrong import fails a test.

The gateway is a stack (see ``design.md``); a package may import the layers
below it, never the ones above::

    wiring     runtime, app, server, cli         build the AppState, run the server
    api/       the front doors and management routes: wire format <-> canonical model
    pipeline/  the stages one request goes through
    services   providers/ policy/ dlp/ auth/ audit/ storage/ config/ routing/ ratelimit/ hitl/
               grounding/ reports/
    wire/      the formats' tables and encoders, shared by api/ and providers/
    base       chat, errors, settings, tokens, transport, records, streams, shutdown,
               state/, observability/

``api/`` reaches the services only through the pipeline and the services'
public names: it imports no provider adapter and no policy internals, since
what a front door shares with an adapter is the wire format, in ``wire/``.
``providers/`` and ``policy/`` are siblings that share the HTTP transport,
which is why it lives in the base (:mod:`llm_gateway.transport`). The local
emulators stand in for real providers and must stay independent of the code
they test, so they import none of the gateway's own formats.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside
functions: a type-only import still ties a lower layer to a higher one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "llm_gateway"

WIRING = ("llm_gateway.runtime", "llm_gateway.app", "llm_gateway.server", "llm_gateway.cli")
ABOVE_SERVICES = ("llm_gateway.api", "llm_gateway.pipeline", *WIRING)
SERVICES = (
    "llm_gateway.providers",
    "llm_gateway.policy",
    "llm_gateway.dlp",
    "llm_gateway.auth",
    "llm_gateway.audit",
    "llm_gateway.storage",
    "llm_gateway.config",
    "llm_gateway.routing",
    "llm_gateway.ratelimit",
    "llm_gateway.hitl",
    "llm_gateway.grounding",
    "llm_gateway.reports",
)
ABOVE_WIRE = (*SERVICES, *ABOVE_SERVICES, "llm_gateway.emulators")
ABOVE_BASE = ("llm_gateway.wire", *ABOVE_WIRE)

#: Importing module or package -> the modules it must not import. An entry ending
#: in ".*" forbids the package's submodules but not the package's own public names.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "llm_gateway.chat": ABOVE_BASE,
    "llm_gateway.errors": ABOVE_BASE,
    "llm_gateway.transport": ABOVE_BASE,
    "llm_gateway.observability": ABOVE_BASE,
    "llm_gateway.records": ABOVE_BASE,
    "llm_gateway.streams": ABOVE_BASE,
    "llm_gateway.shutdown": ABOVE_BASE,
    "llm_gateway.state": ABOVE_BASE,
    "llm_gateway.settings": ABOVE_BASE,
    "llm_gateway.wire": ABOVE_WIRE,
    **{service: ABOVE_SERVICES for service in SERVICES},
    "llm_gateway.providers": (*ABOVE_SERVICES, "llm_gateway.policy"),
    "llm_gateway.policy": (*ABOVE_SERVICES, "llm_gateway.providers"),
    "llm_gateway.pipeline": ("llm_gateway.api", *WIRING),
    "llm_gateway.api": (
        "llm_gateway.providers",
        "llm_gateway.policy.*",
        "llm_gateway.app",
        "llm_gateway.server",
        "llm_gateway.cli",
    ),
    "llm_gateway.emulators": (
        "llm_gateway.chat",
        "llm_gateway.wire",
        "llm_gateway.transport",
        "llm_gateway.providers",
        *ABOVE_SERVICES,
    ),
}

#: (importing module, imported module): known exceptions, each to be removed by the
#: change named beside it. An entry that no longer matches an import fails the test.
ALLOWED: dict[tuple[str, str], str] = {
    # The settings parse DLP_MODE, DLP_ON_ERROR and DLP_OPERATOR to DLP's own enums,
    # which live in a module that imports nothing of the gateway's.
    ("llm_gateway.settings.dlp", "llm_gateway.dlp.findings"): "DLP's vocabulary, a leaf",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted((SRC / ROOT).rglob("*.py"))


def is_module(name: str) -> bool:
    """A module or a package (``api/`` and ``audit/`` are namespace packages: no __init__)."""
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or base.is_dir()


def imports_of(path: Path) -> list[Import]:
    """Every ``llm_gateway`` module ``path`` imports, wherever the import statement is."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), module, package)


def imports_in(source: str, module: str, package: str) -> list[Import]:
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from llm_gateway.policy import inputs`` imports the submodule too.
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            targets = [t for t in targets if t == base or is_module(t)]
        else:
            continue
        found += [Import(module, t, node.lineno) for t in targets if within(t, ROOT)]
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbids(rule: str, target: str) -> bool:
    if rule.endswith(".*"):
        return target.startswith(rule[:-1])  # submodules only
    return within(target, rule)


def violations() -> list[Import]:
    bad = []
    for path in source_files():
        for imp in imports_of(path):
            rules = [r for key, rs in FORBIDDEN.items() if within(imp.module, key) for r in rs]
            if any(forbids(rule, imp.target) for rule in rules):
                bad.append(imp)
    return bad


def test_no_layer_imports_a_layer_above_it() -> None:
    bad = [i for i in violations() if (i.module, i.target) not in ALLOWED]
    assert not bad, "imports across the layers (see this file's docstring):\n" + "\n".join(
        f"  {i.module} (line {i.line}) imports {i.target}" for i in bad
    )


def test_every_allowed_exception_is_still_needed() -> None:
    """An exception whose import is gone must go too, or it would hide the next one."""
    used = {(i.module, i.target) for i in violations()}
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"remove these entries from ALLOWED, their imports are gone: {stale}"


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_every_rule_names_a_real_module(name: str) -> None:
    targets = [t.removesuffix(".*") for t in FORBIDDEN[name]]
    assert is_module(name), f"{name} is not a module: its rule checks nothing"
    assert all(is_module(t) for t in targets), [t for t in targets if not is_module(t)]


def test_the_scan_sees_type_checking_function_local_and_package_imports() -> None:
    """The checker itself: imports in every position it must see are found."""
    by_module: dict[str, set[str]] = {}
    for path in source_files():
        for imp in imports_of(path):
            by_module.setdefault(imp.module, set()).add(imp.target)
    type_only = "if TYPE_CHECKING:\n    from ..pipeline import context\n"
    found = imports_in(type_only, "llm_gateway.audit.records", "llm_gateway.audit")
    assert "llm_gateway.pipeline.context" in {i.target for i in found}
    assert "llm_gateway.policy.commands" in by_module["llm_gateway.cli"]  # inside a function
    assert "llm_gateway.api.openai" in by_module["llm_gateway.api.doors"]  # from pkg import mod
