"""Load a YAML file into a pydantic model, with errors that name file, line and field.

PyYAML's node tree knows where every value was written; we keep a map from
each value's path (``("routing", "models", "gpt-4", "timeout_ms")``) to its
line, so a validation error points at the line to fix rather than only at a
field name.

String values may refer to environment variables as ``${NAME}`` or
``${NAME:-default}``. A reference to an unset variable without a default is
not an error here: it is reported in ``LoadedYaml.unset`` against the path of
the value, so that, for example, a model whose API key is not set can be
disabled with a clear message instead of stopping the gateway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

_SECRET_WORDS = re.compile(r"key|secret|password|token", re.IGNORECASE)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration file is invalid; ``problems`` holds one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(slots=True)
class LoadedYaml:
    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    unset: dict[Loc, list[str]] = field(default_factory=dict)  # path -> unset variables

    def where(self, loc: Loc) -> str:
        """``file:line`` for the deepest known prefix of ``loc``."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)


def load_yaml(path: Path, environ: Mapping[str, str] | None = None) -> LoadedYaml:
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"{path}: cannot read: {exc}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"{where}: not valid YAML: {problem}"]) from None
    loaded = LoadedYaml(path=path, data=None)
    if node is None:
        loaded.data = {}
    else:
        loaded.data = _Builder(loaded, env).build(node, ())
    return loaded


class _Builder:
    """Walks the node tree, recording each value's line and resolving ``${VAR}``."""

    def __init__(self, out: LoadedYaml, env: Mapping[str, str]) -> None:
        self.out = out
        self.env = env
        self.scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.out.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalars.construct_object(key_node)
                key = key if isinstance(key, int) else str(key)
                if key in result:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(
                        self.out.path, [f"{self.out.path}:{line}: duplicate key {key!r}"]
                    )
                result[key] = self.build(value_node, (*loc, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self.scalars.construct_object(node)
        if isinstance(value, str) and "${" in value:
            return _interpolate(value, loc, self.out, self.env)
        return value


def _interpolate(value: str, loc: Loc, out: LoadedYaml, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name, "")
        if found:
            return found
        if default is not None:
            return default
        out.unset.setdefault(loc, []).append(name)
        return ""

    return _ENV_REF.sub(substitute, value)


def validate(model: type[M], loaded: LoadedYaml, *, hide: frozenset[str] = frozenset()) -> M:
    """Validate ``loaded.data`` against ``model``, raising one ConfigError for all problems.

    A value is never shown when its path names a secret (a key, a token...) or a
    field in ``hide`` (a webhook's URL, which is its credential)."""
    try:
        return model.model_validate(loaded.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            got = err.get("input")
            secret = any(isinstance(p, str) and (_SECRET_WORDS.search(p) or p in hide) for p in loc)
            plain = not secret and not isinstance(got, dict | list) and got is not None
            shown = f" (got {got!r})" if plain else ""
            problems.append(f"{loaded.where(loc)}: {dotted}: {err['msg']}{shown}")
        raise ConfigError(loaded.path, problems) from None


def load_config(model: type[M], path: Path, environ: Mapping[str, str] | None = None) -> M:
    return validate(model, load_yaml(path, environ))
