"""The shortest path through every front door: one answer each, with its audit row."""

from __future__ import annotations

from tests.e2e.conftest import Gateway


def test_openai_sdk_to_each_provider(gateway: Gateway) -> None:
    client = gateway.openai()
    for model in ("gpt-emu", "claude-emu", "ollama-emu"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "ping"}]
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == "Echo: ping"
        row = gateway.audit_row(raw.headers["x-request-id"])
        assert (row.status, row.model, row.user_id) == (200, model, "alice")
