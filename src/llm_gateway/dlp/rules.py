"""Detection rules: the YAML model, and the compiled form the engine runs.

The specification's ``config/dlp_rules.yaml`` (``rules: [{name, pattern,
action, severity}]``) loads unchanged. Every other field is optional:

``entity``/``label``/``category``
    what the finding is called (``US_SSN``), shown as (``SSN``), and its family
    (``pii``, ``secret``, ``custom``; user rules default to ``custom``).
``keywords``
    a cheap, case-insensitive gate: the rule runs only when one of them occurs
    somewhere in the text; they also count as context words.
``validator``
    one name or a list (``luhn``, ``ssn``, ``entropy>=3.5``...; see
    ``validators``), all of which must accept the matched value.
``allowlist``
    exact values never reported (documented example keys, for instance).
``context``, ``negative_context`` and ``score``
    see "Scoring" below.
``(?P<value>...)`` in the pattern
    the part of the match that is sensitive; the finding covers only it, so a
    pattern can match ``password=`` without the word being redacted.

Scoring. A match starts at the rule's ``score`` (default 1.0). If one of its
context words or keywords appears within ``CONTEXT_BEFORE`` characters before
the value or ``CONTEXT_AFTER`` after it, as a whole word or its plural
(``dob`` counts in "DOB:" and ``order`` in "orders", but not in "adobe" or
"ordered"), the score rises by
``CONTEXT_BOOST``, capped at 1.0; if one of its ``negative_context`` words
does ("invoice", "order"), it falls by as much. Findings scoring below
``MIN_SCORE`` are dropped: a rule with ``score: 0.3`` reports only in
context, which is how dates of birth are found without flagging every date,
and one with ``score: 0.5`` reports unless something nearby says the value
is something else, which is how a bare nine-digit SSN in a table is found
while "Invoice 570820990" is not.

Words are found inside identifiers too, as code and configuration spell
them: ``_``, ``-`` and a lower-to-upper case change separate words, in the
text and in the rule's words alike, so ``okta`` and ``api token`` count in
"oktaApiToken", "OKTA_API_TOKEN" and "okta-api-token", and ``aws_secret`` in
"awsSecretAccessKey".

A file may carry ``defaults`` (category, action, severity, score) applied to
rules that do not set them; the built-in files use it. A rule without an
action takes the engine's default action (``DLP_MODE``) at load time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_gateway.config.loader import ConfigError, LoadedYaml, load_yaml
from llm_gateway.dlp import validators
from llm_gateway.dlp.findings import Action, Category, Severity
from llm_gateway.dlp.regex import Pattern, PatternError

CONTEXT_BEFORE = 64
CONTEXT_AFTER = 32
CONTEXT_BOOST = 0.35
MIN_SCORE = 0.5

Check = validators.Validator
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
Word = Annotated[str, Field(min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleDefaults(_Strict):
    category: Category | None = None
    action: Action | None = None
    severity: Severity | None = None
    score: Score | None = None


class RuleSpec(_Strict):
    """One rule as written in YAML."""

    name: Name
    pattern: Annotated[str, Field(min_length=1)]
    action: Action | None = None
    severity: Severity | None = None
    entity: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")] | None = None
    label: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")] | None = None
    category: Category | None = None
    keywords: list[Word] = []
    validator: str | list[str] | None = None
    allowlist: list[str] = []
    context: list[Word] = []
    negative_context: list[Word] = []
    score: Score | None = None


class RulesFile(_Strict):
    rules: list[RuleSpec]
    defaults: RuleDefaults = RuleDefaults()


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A compiled rule. ``action`` None means "the engine's default action"."""

    name: str
    entity: str
    label: str
    category: Category
    pattern: Pattern
    action: Action | None
    severity: Severity
    score: float
    keywords: tuple[str, ...]
    checks: tuple[Check, ...]
    validator_names: tuple[str, ...]
    allowlist: frozenset[str]
    context: re.Pattern[str] | None
    negative_context: re.Pattern[str] | None
    origin: str  # "file:line" of the rule, for messages
    builtin: bool
    # A built-in whose validator confirms the value (a checksum, a registry length):
    # on a larger span it wins over a looser custom rule (see ``resolve``).
    validated: bool = False
    # Matches that only stand for a secret (``ghp_xxxx``, ``EXAMPLE``) become low
    # alerts (see ``placeholders``): secrets, and rules that block.
    stand_ins: bool = False

    def score_at(self, text: str, start: int, end: int) -> float:
        """The score of a match at ``text[start:end]``, given the words around it.

        Bounded work: two windows of fixed size, searched for fixed word lists.
        """
        score = self.score
        raise_ = self.context if score < 1.0 else None
        lower = self.negative_context
        if raise_ is None and lower is None:
            return score
        windows = (text[max(0, start - CONTEXT_BEFORE) : start], text[end : end + CONTEXT_AFTER])
        if raise_ is not None and _near(raise_, windows):
            score = min(1.0, score + CONTEXT_BOOST)
        if lower is not None and _near(lower, windows):
            score -= CONTEXT_BOOST
        return score


def load_rules(path: Path, *, builtin: bool = False, phone: Check | None = None) -> list[Rule]:
    """Rules of one YAML file; ConfigError naming file, line, rule and problem for each fault.

    ``phone`` is the ``phone`` validator to use (default: the default regions').
    """
    loaded = load_yaml(path)
    parsed = _validate(loaded)
    problems: list[str] = []
    rules: list[Rule] = []
    first_line: dict[str, int] = {}
    for index, spec in enumerate(parsed.rules):
        where = loaded.where(("rules", index))
        line = loaded.lines.get(("rules", index, "name"), 0)
        if spec.name in first_line:
            problems.append(
                f"{loaded.where(('rules', index, 'name'))}: rule {spec.name!r}: "
                f"duplicate name (first defined at line {first_line[spec.name]})"
            )
            continue
        first_line[spec.name] = line
        try:
            rules.append(_compile(spec, parsed.defaults, where, builtin, phone))
        except _RuleProblem as problem:
            field_where = loaded.where(("rules", index, problem.field))
            problems.append(f"{field_where}: rule {spec.name!r}: {problem.field}: {problem}")
    if problems:
        raise ConfigError(path, problems)
    return rules


class _RuleProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _compile(
    spec: RuleSpec, defaults: RuleDefaults, where: str, builtin: bool, phone: Check | None
) -> Rule:
    try:
        pattern = Pattern(spec.pattern)
    except PatternError as exc:
        raise _RuleProblem("pattern", str(exc)) from None
    names = [spec.validator] if isinstance(spec.validator, str) else list(spec.validator or [])
    checks: list[Check] = []
    for name in names:
        try:
            checks.append(validators.resolve(name, phone))
        except ValueError as exc:
            raise _RuleProblem("validator", str(exc)) from None
    entity = spec.entity or re.sub(r"[^A-Z0-9_]", "_", spec.name.upper())
    category = spec.category or defaults.category or "custom"
    action = spec.action or defaults.action
    words = tuple(dict.fromkeys(_words(w) for w in (*spec.context, *spec.keywords)))
    return Rule(
        name=spec.name,
        entity=entity,
        label=spec.label or entity,
        category=category,
        pattern=pattern,
        action=action,
        severity=spec.severity or defaults.severity or Severity.MEDIUM,
        score=_first(spec.score, defaults.score, 1.0),
        keywords=tuple(dict.fromkeys(k.lower() for k in spec.keywords)),
        checks=tuple(checks),
        validator_names=tuple(names),
        allowlist=frozenset(spec.allowlist),
        context=_context_pattern(words),
        negative_context=_context_pattern(tuple(_words(w) for w in spec.negative_context)),
        origin=where,
        builtin=builtin,
        validated=builtin and any(name in validators.CONFIRMING for name in names),
        stand_ins=category == "secret" or action is Action.BLOCK,
    )


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


_CASE_CHANGE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_JOINERS = str.maketrans("_-", "  ")


def _words(text: str) -> str:
    """``text`` lower-cased with identifier joints as spaces: "oktaApiToken" -> "okta api token"."""
    return _CASE_CHANGE.sub(" ", text).lower().translate(_JOINERS)


def _near(words: re.Pattern[str], windows: tuple[str, str]) -> bool:
    """Whether one of ``words`` is in either window. The case changes of identifiers are
    only split when the plain reading finds nothing and there is a capital to split at,
    so the common case (prose, a word found as written) costs one lower() per window."""
    for window in windows:
        plain = window.lower()
        if words.search(plain.translate(_JOINERS)):
            return True
        if plain != window and words.search(_words(window)):
            return True
    return False


def _context_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """Whole words or their plural: ``dob`` matches "DOB:" and "dob_field", never "adobe"."""
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(f"(?<![a-z0-9])(?:{alternatives})s?(?![a-z0-9])")


def _validate(loaded: LoadedYaml) -> RulesFile:
    """Like ``config.loader.validate``, but problems name the rule, not only its index."""
    try:
        return RulesFile.model_validate(loaded.data)
    except ValidationError as exc:
        problems = [_describe(loaded, err) for err in exc.errors(include_url=False)]
        raise ConfigError(loaded.path, problems) from None


def _describe(loaded: LoadedYaml, err: Any) -> str:
    loc = tuple(err["loc"])
    got = err.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
    if len(loc) >= 3 and loc[0] == "rules" and isinstance(loc[1], int):
        field = ".".join(str(part) for part in loc[2:])
        rule = _rule_name(loaded, loc[1])
        return f"{loaded.where(loc)}: rule {rule}: {field}: {err['msg']}{shown}"
    dotted = ".".join(str(part) for part in loc) or "(top level)"
    return f"{loaded.where(loc)}: {dotted}: {err['msg']}{shown}"


def _rule_name(loaded: LoadedYaml, index: int) -> str:
    rules = loaded.data.get("rules") if isinstance(loaded.data, dict) else None
    if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
        name = rules[index].get("name")
        if isinstance(name, str):
            return repr(name)
    return f"#{index + 1}"
