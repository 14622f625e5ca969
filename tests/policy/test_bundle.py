"""Loading policy files: every problem is found at load time and named."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.policy.bundle import PolicyLoadError, load_bundle

RULE = "data.llm.authz.allow"
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _load_error(tmp_path: Path, files: dict[str, str], rule: str = RULE) -> str:
    with pytest.raises(PolicyLoadError) as info:
        load_bundle(_write(tmp_path, files), rule)
    return str(info.value)


def test_the_shipped_policy_loads() -> None:
    bundle = load_bundle(REPO_POLICIES, RULE)
    assert any(m.name == "rego/authz.rego" for m in bundle.modules)
    assert "access" in bundle.data
    assert len(bundle.revision) == 12


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path, {"rego/authz.rego": "package llm.authz\n\nallow if { input.x = \n"}
    )
    assert "rego/authz.rego" in message
    assert "not valid Rego" in message
    assert "Stack backtrace" not in message


def test_an_unknown_builtin_is_a_load_error(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {"rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if no.such_fn(input.x)\n"},
    )
    assert "no.such_fn" in message


def test_an_unknown_builtin_in_another_rule_is_found_too(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {
            "rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if input.x == 1\n",
            "rego/other.rego": "package other\nimport rego.v1\nr if bogus(1)\n",
        },
    )
    assert "bogus" in message


def test_a_decision_path_that_does_not_exist(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {"rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if input.x == 1\n"},
        rule="data.llm.authz.decision",
    )
    assert "data.llm.authz.decision is not defined" in message
    assert "data.llm.authz" in message


def test_no_rego_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no such directory"):
        load_bundle(tmp_path, RULE)


def test_an_empty_rego_directory(tmp_path: Path) -> None:
    (tmp_path / "rego").mkdir()
    with pytest.raises(PolicyLoadError, match=r"no \.rego files"):
        load_bundle(tmp_path, RULE)


def test_data_documents_merge_and_conflicts_are_named(tmp_path: Path) -> None:
    policy = {"rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if data.a.enabled\n"}
    bundle = load_bundle(
        _write(
            tmp_path / "ok", {**policy, "data/a.yaml": "a: {enabled: true}\n", "data/b.json": "{}"}
        ),
        RULE,
    )
    assert bundle.data == {"a": {"enabled": True}}
    message = _load_error(
        tmp_path / "bad", {**policy, "data/a.yaml": "a: 1\n", "data/b.json": '{"a": 2}'}
    )
    assert "data/b.json" in message
    assert "'a'" in message


def test_a_yaml_key_that_is_not_a_string(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted ``on`` as true; the error says so instead of crashing."""
    message = _load_error(
        tmp_path,
        {
            "rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if input.x\n",
            "data/flags.yaml": "flags: {on: 1}\n",
        },
    )
    assert "data/flags.yaml" in message
    assert "quote them" in message


def test_a_data_document_that_is_not_an_object(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {
            "rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if input.x\n",
            "data/list.json": "[1, 2]",
        },
    )
    assert "data/list.json" in message
    assert "must be an object" in message


def test_test_modules_are_kept_apart(tmp_path: Path) -> None:
    bundle = load_bundle(
        _write(
            tmp_path,
            {
                "rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if input.x\n",
                "rego/authz_test.rego": "package llm.authz_test\nimport rego.v1\n"
                'test_x if data.llm.authz.allow with input as {"x": true}\n',
            },
        ),
        RULE,
    )
    assert [m.name for m in bundle.modules] == ["rego/authz.rego"]
    assert [m.name for m in bundle.tests] == ["rego/authz_test.rego"]


def test_the_revision_follows_the_content(tmp_path: Path) -> None:
    files = {"rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if input.x\n"}
    first = load_bundle(_write(tmp_path, files), RULE).revision
    assert load_bundle(tmp_path, RULE).revision == first
    _write(tmp_path, {"data/d.json": '{"k": 1}'})
    assert load_bundle(tmp_path, RULE).revision != first
