"""Rule files: the specification's format loads unchanged; every bad rule names file, line, rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.config.loader import ConfigError
from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action, Severity
from llm_gateway.dlp.rules import load_rules

REPO = Path(__file__).parents[2]
SPEC_FILE = REPO / "config" / "dlp_rules.yaml"

# The example from the product specification, verbatim.
SPEC_EXAMPLE = r"""# config/dlp_rules.yaml
rules:
  - name: credit_card
    pattern: '\b\d{4}[-\s]?\d{4}[-\s]?\d{4}[-\s]?\d{4}\b'
    action: redact
    severity: high

  - name: api_key
    pattern: 'sk-[a-zA-Z0-9]{32,}'
    action: block
    severity: critical

  - name: internal_ip
    pattern: '\b10\.\d{1,3}\.\d{1,3}\.\d{1,3}\b'
    action: alert
    severity: medium
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "dlp_rules.yaml"
    path.write_text(body)
    return path


def _problems(tmp_path: Path, body: str) -> list[str]:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.path == path
    return info.value.problems


def _rule(name: str, pattern: str, extra: str = "") -> str:
    return f"  - name: {name}\n    pattern: '{pattern}'\n{extra}"


def test_the_shipped_file_has_the_specification_rules(tmp_path: Path) -> None:
    """The same rules as the specification's example; only a Luhn check is added."""
    shipped = {r.name: r for r in load_rules(SPEC_FILE)}
    spec = {r.name: r for r in load_rules(_write(tmp_path, SPEC_EXAMPLE))}
    assert shipped.keys() == spec.keys()
    for name, rule in spec.items():
        ours = shipped[name]
        assert (ours.pattern.source, ours.action, ours.severity) == (
            rule.pattern.source,
            rule.action,
            rule.severity,
        )
    assert shipped["credit_card"].validator_names == ("luhn",)


def test_the_specification_example_loads_unchanged(tmp_path: Path) -> None:
    rules = load_rules(_write(tmp_path, SPEC_EXAMPLE))
    assert [(r.name, r.action, r.severity) for r in rules] == [
        ("credit_card", Action.REDACT, Severity.HIGH),
        ("api_key", Action.BLOCK, Severity.CRITICAL),
        ("internal_ip", Action.ALERT, Severity.MEDIUM),
    ]
    assert all(r.category == "custom" and not r.builtin for r in rules)
    assert [r.entity for r in rules] == ["CREDIT_CARD", "API_KEY", "INTERNAL_IP"]
    assert [r.label for r in rules] == ["CREDIT_CARD", "API_KEY", "INTERNAL_IP"]


def test_the_specification_rules_act_as_written() -> None:
    engine = RuleEngine.load(SPEC_FILE, enable_pii=False, enable_secrets=False)
    key = "sk-" + "Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4"
    text = f"key {key} card 4111 1111 1111 1111 host 10.1.2.3"
    found = {f.rule: (text[f.start : f.end], f.action) for f in engine.scan(text)}
    assert found == {
        "api_key": (key, Action.BLOCK),
        "credit_card": ("4111 1111 1111 1111", Action.REDACT),
        "internal_ip": ("10.1.2.3", Action.ALERT),
    }


def test_optional_fields_load(tmp_path: Path) -> None:
    body = "rules:\n" + _rule(
        "employee_id",
        r"\bEMP-(?P<value>\d{6})\b",
        "    entity: EMPLOYEE_ID\n"
        "    label: EMPLOYEE\n"
        "    category: pii\n"
        "    keywords: [Employee, staff]\n"
        "    validator: [luhn, 'entropy>=1.0']\n"
        "    allowlist: ['000000']\n"
        "    context: [badge]\n"
        "    negative_context: [sample]\n"
        "    score: 0.4\n",
    )
    (rule,) = load_rules(_write(tmp_path, body))
    assert (rule.entity, rule.label, rule.category) == ("EMPLOYEE_ID", "EMPLOYEE", "pii")
    assert rule.keywords == ("employee", "staff")
    assert rule.validator_names == ("luhn", "entropy>=1.0")
    assert rule.allowlist == frozenset({"000000"})
    assert rule.score == 0.4
    assert rule.action is None  # the engine's default action applies
    assert rule.severity is Severity.MEDIUM
    assert rule.context is not None
    assert rule.context.search("the badge")
    assert rule.score_at("badge EMP-123455", 6, 16) == 0.75
    assert rule.score_at("sample EMP-123455", 7, 17) == pytest.approx(0.05)


def test_file_defaults_apply_to_rules_that_do_not_say(tmp_path: Path) -> None:
    body = (
        "defaults: {category: secret, action: block, severity: critical, score: 0.9}\n"
        "rules:\n" + _rule("a", "aaa") + _rule("b", "bbb", "    action: alert\n    score: 0.6\n")
    )
    first, second = load_rules(_write(tmp_path, body))
    assert (first.category, first.action, first.severity, first.score) == (
        "secret",
        Action.BLOCK,
        Severity.CRITICAL,
        0.9,
    )
    assert (second.action, second.score) == (Action.ALERT, 0.6)


@pytest.mark.parametrize(
    ("pattern", "complaint"),
    [
        (r"(?=secret)\w+", "lookahead (?=...) is not supported"),
        (r"(?!test)\w+", "negative lookahead (?!...) is not supported"),
        (r"(?<=key=)\w+", "lookbehind (?<=...) is not supported"),
        (r"(?<!x)\d+", "negative lookbehind (?<!...) is not supported"),
        (r"(\w)\1", r"back-reference \1 is not supported"),
        (r"(?P<w>\w)(?P=w)", "back-reference (?P=name) is not supported"),
        (r"[a-z", "invalid RE2 pattern: missing ]"),
        (r"a{2,1}", "invalid RE2 pattern: invalid repetition size"),
        (r"x*", "matches the empty string"),
    ],
)
def test_a_bad_pattern_names_file_line_rule_and_problem(
    tmp_path: Path, pattern: str, complaint: str
) -> None:
    body = "rules:\n" + _rule("fine", "abc") + _rule("broken", pattern, "    action: block\n")
    (problem,) = _problems(tmp_path, body)
    path = tmp_path / "dlp_rules.yaml"
    assert problem.startswith(f"{path}:5: rule 'broken': pattern: ")
    assert complaint in problem


def test_an_unknown_validator_is_named_with_the_choices(tmp_path: Path) -> None:
    body = "rules:\n" + _rule("card", r"\d{16}", "    validator: lunh\n")
    (problem,) = _problems(tmp_path, body)
    assert problem.startswith(f"{tmp_path / 'dlp_rules.yaml'}:4: rule 'card': validator: ")
    assert "unknown validator 'lunh'" in problem
    assert "luhn" in problem
    assert "entropy>=X" in problem


def test_an_entropy_threshold_above_eight_bits_is_refused(tmp_path: Path) -> None:
    body = "rules:\n" + _rule("token", r"\w{20}", "    validator: 'entropy>=9'\n")
    (problem,) = _problems(tmp_path, body)
    assert "rule 'token': validator: entropy threshold 9.0 is above 8" in problem


def test_an_unknown_action_names_file_line_and_rule(tmp_path: Path) -> None:
    body = "rules:\n" + _rule("ok", "abc") + _rule("bad", "def", "    action: quarantine\n")
    (problem,) = _problems(tmp_path, body)
    path = tmp_path / "dlp_rules.yaml"
    assert problem.startswith(f"{path}:6: rule 'bad': action: ")
    assert "'block', 'redact' or 'alert'" in problem
    assert "quarantine" in problem


def test_a_duplicate_name_points_at_both_definitions(tmp_path: Path) -> None:
    body = "rules:\n" + _rule("twice", "abc") + _rule("other", "x") + _rule("twice", "def")
    (problem,) = _problems(tmp_path, body)
    path = tmp_path / "dlp_rules.yaml"
    assert problem == f"{path}:6: rule 'twice': duplicate name (first defined at line 2)"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    body = (
        "rules:\n"
        + _rule("a", "(?=x)y")
        + _rule("b", "abc", "    validator: nope\n")
        + _rule("c", "abc", "    severity: urgent\n")
    )
    problems = _problems(tmp_path, body)
    assert len(problems) == 1  # schema errors come first, alone: the rest cannot be checked
    assert "rule 'c': severity:" in problems[0]
    body = "rules:\n" + _rule("a", "(?=x)y") + _rule("b", "abc", "    validator: nope\n")
    problems = _problems(tmp_path, body)
    assert [p.split(": ")[1] for p in problems] == ["rule 'a'", "rule 'b'"]


def test_unknown_fields_and_bad_values_are_refused(tmp_path: Path) -> None:
    body = "rules:\n" + _rule("x", "abc", "    sevrity: high\n    score: 2\n    entity: lower\n")
    problems = _problems(tmp_path, body)
    assert any("rule 'x': sevrity: Extra inputs are not permitted" in p for p in problems)
    assert any("rule 'x': score: Input should be less than or equal to 1" in p for p in problems)
    assert any("rule 'x': entity: String should match pattern" in p for p in problems)


def test_a_rule_without_a_name_is_numbered(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "rules:\n  - pattern: abc\n")
    assert problems == [f"{tmp_path / 'dlp_rules.yaml'}:2: rule #1: name: Field required"]


def test_a_missing_file_and_invalid_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rules(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(_write(tmp_path, "rules: [\n"))


def test_a_custom_rule_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules:\n" + _rule("pii.credit_card", r"\d{16}"))
    with pytest.raises(ConfigError) as info:
        RuleEngine.load(path)
    (problem,) = info.value.problems
    assert problem == f"{path}:2: rule 'pii.credit_card': name: already used by a built-in rule"


def test_the_built_in_files_load_and_are_marked(tmp_path: Path) -> None:
    engine = RuleEngine.load(None)
    assert engine.rules
    assert all(r.builtin for r in engine.rules)
    assert {r.category for r in engine.rules} == {"pii", "secret"}
    assert all(r.name.startswith(("pii.", "secret.")) for r in engine.rules)


def test_the_shipped_card_rule_leaves_an_iban_to_the_iban_detector() -> None:
    """Sixteen digits inside an IBAN are not a card: the whole IBAN is one finding."""
    engine = RuleEngine.load(SPEC_FILE)
    text = "pay to DE89 3704 0044 0532 0130 00 today"
    found = [(f.entity, text[f.start : f.end]) for f in engine.scan(text)]
    assert found == [("IBAN_CODE", "DE89 3704 0044 0532 0130 00")]
