"""The verdict's JSON object and its audit line."""

from __future__ import annotations

from llm_gateway.grounding import Conversation, ToolResult, check

SECRET = "i-0a1b2c3d4e5f60718"


def verdict_with_findings() -> object:
    tool = ToolResult("call_1", "x", "", f'{{"InstanceId": "{SECRET}", "State": "stopped"}}')
    return check(Conversation((tool,)), f"{SECRET} is probably running, at $540.")


def test_to_json_has_the_api_fields() -> None:
    verdict = verdict_with_findings()
    body = verdict.to_json()  # type: ignore[attr-defined]
    assert set(body) == {
        "grounded", "score", "claims", "unsupported", "contradictions", "speculative",
        "uncited", "failed", "truncated",
    }  # fmt: skip
    claim = body["claims"][0]
    assert set(claim) == {
        "start", "end", "text", "kind", "status", "tool_call_id", "found", "explanation",
    }  # fmt: skip
    assert body["grounded"] is False
    assert "contradiction" in body["failed"]


def test_the_audit_summary_has_counts_and_no_values() -> None:
    summary = verdict_with_findings().audit_summary()  # type: ignore[attr-defined]
    assert summary.startswith("grounded=false score=")
    assert "contradicted=1" in summary
    assert "failed=" in summary
    assert SECRET not in summary
    assert "540" not in summary
    assert "stopped" not in summary
