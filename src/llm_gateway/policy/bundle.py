"""The policy as loaded from disk: Rego modules, data documents and a revision.

Each module is parsed as Rego v1 first and as v0 only when v1 cannot parse it.
The order matters: in v0 mode regorus reads v1 text (``allow if {...}``
without an import) as a rule named ``if`` and evaluates ``allow`` to true for
every input. A module is never tried in v0 mode when it parses as v1.

A bundle is checked completely when it is loaded (every module parses, data
documents merge without conflicts, the whole ``data`` tree evaluates, the
decision rule exists, it decides representative inputs without an error, and
the policy's own ``*_test.rego`` tests pass), so that a bad policy is refused
at start-up or at reload, never discovered by a request.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import regorus
import yaml

from llm_gateway.auth.principal import Principal
from llm_gateway.chat import ChatRequest, Message, TextPart
from llm_gateway.policy.decision import PolicyError, decision_from_result
from llm_gateway.policy.inputs import action_input, chat_input

TEST_SUFFIX = "_test.rego"
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


class PolicyLoadError(PolicyError):
    """The policy files cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Module:
    name: str  # the path shown in errors, relative to the policy directory
    text: str
    v0: bool


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    modules: tuple[Module, ...]
    tests: tuple[Module, ...]  # *_test.rego: for `llm-gateway policy test`, never for decisions
    data: dict[str, Any] = field(default_factory=dict)
    revision: str = ""

    def new_engine(self, *, with_tests: bool = False) -> regorus.Engine:
        """A prepared engine, bound to the calling thread (regorus engines cannot move)."""
        engine = regorus.Engine()
        for module in self.modules + (self.tests if with_tests else ()):
            engine.set_rego_v0(module.v0)
            engine.add_policy(module.name, module.text)
        if self.data:
            engine.add_data(self.data)
        return engine


def load_bundle(policy_dir: Path, rule: str, *, with_tests: bool = True) -> PolicyBundle:
    """Load ``policy_dir``/rego/*.rego and ``policy_dir``/data/*.{json,yaml,yml}.

    ``rule`` is the decision's path in ``data`` (``data.llm.authz.allow``).
    ``with_tests=False`` loads a bundle whose own tests fail (to report them).
    """
    rego_dir = policy_dir / "rego"
    if not rego_dir.is_dir():
        raise PolicyLoadError(f"{rego_dir}: no such directory (POLICY_DIR names its parent)")
    modules: list[Module] = []
    tests: list[Module] = []
    for path in sorted(rego_dir.rglob("*.rego")):
        name = str(path.relative_to(policy_dir))
        module = _parse(name, _read(path))
        (tests if path.name.endswith(TEST_SUFFIX) else modules).append(module)
    if not modules:
        raise PolicyLoadError(f"{rego_dir}: no .rego files")
    data = load_data(policy_dir)
    bundle = PolicyBundle(tuple(modules), tuple(tests), data, _revision(modules, data))
    _check(bundle, rule, with_tests=with_tests)
    return bundle


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"{path}: cannot be read: {exc}") from None


def _parse(name: str, text: str) -> Module:
    v1_problem = _parse_problem(name, text, v0=False)
    if v1_problem is None:
        return Module(name, text, v0=False)
    if _parse_problem(name, text, v0=True) is None:
        return Module(name, text, v0=True)
    raise PolicyLoadError(f"{name}: not valid Rego: {v1_problem}")


def _parse_problem(name: str, text: str, *, v0: bool) -> str | None:
    engine = regorus.Engine()
    engine.set_rego_v0(v0)
    try:
        engine.add_policy(name, text)
    except RuntimeError as exc:  # regorus's errors carry a rendered diagnostic
        return engine_message(exc)
    return None


def load_data(policy_dir: Path) -> dict[str, Any]:
    """Merge every data document of ``policy_dir/data`` at the root of ``data``; a key
    defined twice is an error."""
    data_dir = policy_dir / "data"
    merged: dict[str, Any] = {}
    if not data_dir.is_dir():
        return merged
    for path in sorted(data_dir.iterdir()):
        if path.suffix not in (".json", ".yaml", ".yml"):
            continue
        try:
            raw = _read(path)
            document = orjson.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise PolicyLoadError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
        if document is None:
            continue
        if not isinstance(document, dict):
            raise PolicyLoadError(f"{path}: a data document must be an object (a mapping)")
        try:
            orjson.dumps(document)
        except TypeError:
            raise PolicyLoadError(
                f"{path}: every key must be a string and every value JSON "
                "(YAML reads unquoted yes/no/on/off as booleans and dates as dates: quote them)"
            ) from None
        for key, value in document.items():
            if key in merged:
                raise PolicyLoadError(f"{path}: data key {key!r} is also defined in another file")
            merged[key] = value
    return merged


def _revision(modules: list[Module], data: dict[str, Any]) -> str:
    """A hash of what decides: the modules and data (test modules change no decision)."""
    sha = hashlib.sha256()
    for module in modules:
        sha.update(module.name.encode() + b"\x00" + module.text.encode() + b"\x00")
    sha.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    return sha.hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class TestResult:
    module: str
    name: str
    problem: str | None  # None: passed


def run_tests(bundle: PolicyBundle) -> list[TestResult]:
    """Every ``test_`` rule of the ``*_test.rego`` modules; false or undefined fails."""
    engine = bundle.new_engine(with_tests=True)
    engine.set_input({})
    results = []
    for module in bundle.tests:
        package = _PACKAGE.search(module.text)
        if package is None:
            continue
        for name in dict.fromkeys(_TEST_RULE.findall(module.text)):
            try:
                ok = engine.eval_rule(f"data.{package.group(1)}.{name}") is True
                problem = None if ok else "false or undefined"
            except RuntimeError as exc:
                problem = engine_message(exc)
            results.append(TestResult(module.name, name, problem))
    return results


def _trial_inputs() -> list[tuple[str, dict[str, Any]]]:
    """Inputs like those the gateway sends: a policy must decide them without an error."""
    user = Principal("trial-user", "user", tier="trial", team="team", tenant="tenant")
    admin = Principal("trial-admin", "admin", auth_method="api_key", key_id="k")
    chat = ChatRequest("trial-model", [Message("user", [TextPart("hello")])], stream=True)
    where = {"client_ip": "127.0.0.1", "environment": "trial"}
    return [
        ("a user's chat call", chat_input(user, chat, endpoint="openai", **where)),
        ("an administrator's chat call", chat_input(admin, chat, endpoint="native", **where)),
        ("a model listing", action_input(user, "models.list", model="trial-model", **where)),
        ("a usage read", action_input(user, "usage.read", scope="own", **where)),
    ]


def _check(bundle: PolicyBundle, rule: str, *, with_tests: bool) -> None:
    """Problems regorus only reports on evaluation: an unknown built-in, a decision that
    fails on the inputs the gateway sends (a type error on ``input.user``), failing tests."""
    engine = bundle.new_engine()
    engine.set_input({})
    try:
        engine.eval_rule(rule)
    except RuntimeError as exc:
        if "not a valid rule path" in str(exc):
            packages = ", ".join(sorted(engine.get_packages())) or "none"
            raise PolicyLoadError(
                f"the decision {rule} is not defined by any module (packages: {packages})"
            ) from None
        raise PolicyLoadError(f"the policy does not evaluate: {engine_message(exc)}") from None
    try:
        engine.eval_query("data")
    except RuntimeError as exc:
        raise PolicyLoadError(f"the policy does not evaluate: {engine_message(exc)}") from None
    for what, document in _trial_inputs():
        engine.set_input(document)
        try:
            decision_from_result(engine.eval_rule(rule))
        except (RuntimeError, PolicyError) as exc:
            problem = engine_message(exc) if isinstance(exc, RuntimeError) else str(exc)
            raise PolicyLoadError(
                f"the decision {rule} fails on {what} (a trial input): {problem}"
            ) from None
    failed = [t for t in run_tests(bundle) if t.problem is not None] if with_tests else []
    if failed:
        listed = "; ".join(f"{t.module}: {t.name} ({t.problem})" for t in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise PolicyLoadError(f"the policy's own tests fail: {listed}{more}")


def engine_message(exc: BaseException) -> str:
    """Regorus's diagnostic without its Rust backtrace: location and error lines only."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line.startswith(("-->", "error:"))]
    return " ".join(kept) or (lines[0] if lines and lines[0] else type(exc).__name__)
