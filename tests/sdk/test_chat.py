"""The SDK against a real gateway: chat, streams, the management calls, async."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from llm_gateway_sdk import (
    AsyncGateway,
    ChatChunk,
    ChatResponse,
    ChatSummary,
    Gateway,
    NotFound,
    PolicyDenied,
    UpstreamError,
)
from tests.e2e.conftest import Gateway as GatewayUnderTest
from tests.e2e.conftest import directive
from tests.sdk.conftest import SPEC_MODEL


def client(gw: GatewayUnderTest, **kw: object) -> Gateway:
    return Gateway(api_url=gw.base_url, api_key=gw.token(f"u-{uuid.uuid4().hex[:8]}"), **kw)  # type: ignore[arg-type]


def test_chat_returns_the_answer_and_its_metadata(gw: GatewayUnderTest) -> None:
    with client(gw) as gateway:
        response = gateway.chat(
            model=SPEC_MODEL, messages=[{"role": "user", "content": "Analyze this data"}]
        )
    assert isinstance(response, ChatResponse)
    assert response.content == "Echo: Analyze this data"
    assert response.model == SPEC_MODEL
    assert response.tokens_used == 7  # 3 in + 4 out (the emulator counts words)
    assert response.cost == pytest.approx((3 * 3.0 + 4 * 15.0) / 1e6)
    assert (response.pii_detected, response.pii_entities) == (False, [])
    assert response.request_id
    assert (response.confirmation, response.grounding) == (None, None)
    row = gw.audit_row(response.request_id)
    assert (row.endpoint, row.model, row.status) == ("native", SPEC_MODEL, 200)


def test_pii_is_reported(gw: GatewayUnderTest) -> None:
    with client(gw) as gateway:
        response = gateway.chat("gpt-emu", [{"role": "user", "content": "My SSN is 536-22-8726"}])
    assert response.pii_detected is True
    assert response.pii_entities == ["SSN"]
    assert "536-22-8726" not in response.content


def test_options_are_sent(gw: GatewayUnderTest) -> None:
    with client(gw) as gateway:
        response = gateway.chat(
            "gpt-emu",
            [{"role": "system", "content": "Be terse."},
             {"role": "user", "content": "one two three four five"}],
            max_tokens=3, temperature=0.5, conversation_id="conv-42",
        )  # fmt: skip
    assert response.content == "Echo: one two"


def test_a_stream_yields_chunks_then_the_summary(gw: GatewayUnderTest) -> None:
    chunks = ["Hel", "lo, w", "orld", "!"]
    with client(gw) as gateway:
        prompt = directive("stream please now", chunks=chunks)
        with gateway.chat("gpt-emu", [{"role": "user", "content": prompt}], stream=True) as s:
            items = list(s)
    assert [type(i) for i in items] == [ChatChunk] * 4 + [ChatSummary]
    assert [i.text for i in items[:-1]] == chunks
    summary = items[-1]
    assert isinstance(summary, ChatSummary)
    assert summary.text == ""
    assert summary.content == "Hello, world!"
    assert (summary.model, summary.tokens_used) == ("gpt-emu", 5)
    assert summary.request_id == s.request_id
    assert s.summary == summary
    assert gw.audit_row(summary.request_id or "").stream is True


def test_a_stream_ended_by_an_error_event_raises_it_typed(gw: GatewayUnderTest) -> None:
    with client(gw) as gateway:
        prompt = directive("hi there friend", truncate_after=1)
        stream = gateway.chat("gpt-emu", [{"role": "user", "content": prompt}], stream=True)
        seen: list[str] = []

        def read() -> None:
            for item in stream:
                seen.append(item.text)

        with pytest.raises(UpstreamError) as raised:
            read()
    assert raised.value.code == "upstream_stream_interrupted"
    assert raised.value.request_id == stream.request_id
    assert seen  # the text before the failure was delivered


def test_models_scan_usage_and_limits(gw: GatewayUnderTest) -> None:
    with client(gw) as gateway:
        names = {m.id: m for m in gateway.models()}
        assert {"gpt-emu", "claude-emu", "ollama-emu", SPEC_MODEL} <= set(names)
        assert names["gpt-emu"].kind == "model"

        scan = gateway.scan("My SSN is 536-22-8726", redact=True)
        assert [f.entity for f in scan.findings] == ["US_SSN"]
        assert (scan.findings[0].start, scan.findings[0].end) == (10, 21)
        assert scan.redacted_text == "My SSN is <SSN_REDACTED>"
        assert gateway.scan("nothing here").redacted_text is None

        gateway.chat("gpt-emu", [{"role": "user", "content": "count me"}])
        usage = gateway.usage(group_by="model")
        assert usage.scope == "own"
        assert [r.group for r in usage.rows] == ["gpt-emu"]
        assert usage.total.requests == 1
        assert usage.total.tokens_used == 5  # 2 in + "Echo: count me"
        assert gateway.usage(start="2000-01-01", end="2000-02-01").total.requests == 0

        limits = gateway.limits()
        assert limits.enabled is True
        user = next(s for s in limits.scopes if s.scope == "user")
        assert user.requests_per_minute is not None
        assert user.requests_per_minute.limit == 1000000


def test_env_defaults(gw: GatewayUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_URL", gw.base_url)
    monkeypatch.setenv("LLM_GATEWAY_API_KEY", gw.token())
    with Gateway() as gateway:
        assert gateway.api_url == gw.base_url
        assert gateway.chat("gpt-emu", [{"role": "user", "content": "hi"}]).content == "Echo: hi"


def test_the_async_client(gw: GatewayUnderTest) -> None:
    async def main() -> tuple[ChatResponse, list[str], ChatSummary, int]:
        async with AsyncGateway(gw.base_url, gw.token()) as gateway:
            answers = await asyncio.gather(*(
                gateway.chat("gpt-emu", [{"role": "user", "content": f"hello {n}"}])
                for n in range(3)
            ))  # fmt: skip
            prompt = directive("x", chunks=["a", "b", "c"])
            stream = await gateway.chat("claude-emu", [{"role": "user", "content": prompt}],
                                        stream=True)  # fmt: skip
            texts = [item.text async for item in stream]
            assert stream.summary is not None
            models = await gateway.models()
            return answers[2], texts, stream.summary, len(models)

    answer, texts, summary, models = asyncio.run(main())
    assert answer.content == "Echo: hello 2"
    assert texts == ["a", "b", "c", ""]
    assert (summary.content, summary.model) == ("abc", "claude-emu")
    assert models >= 4


def test_an_auditor_pages_through_the_tenants_audit_rows(gw: GatewayUnderTest) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    with Gateway(api_url=gw.base_url, api_key=gw.token("worker", tenant=tenant)) as worker:
        ids = [
            worker.chat("gpt-emu", [{"role": "user", "content": f"n{n}"}]).request_id
            for n in range(3)
        ]
    auditor = gw.token("reviewer", role="auditor", tenant=tenant)
    with Gateway(api_url=gw.base_url, api_key=auditor) as gateway:
        first = gateway.audit(user="worker", limit=2)
        assert [r.request_id for r in first.rows] == [ids[2], ids[1]]  # newest first
        assert first.next_cursor is not None
        rest = gateway.audit(user="worker", limit=2, cursor=first.next_cursor)
        assert [r.request_id for r in rest.rows] == [ids[0]]
        one = gateway.audit_record(ids[0] or "")
        assert (one.user_id, one.tenant, one.status) == ("worker", tenant, 200)
        assert gateway.audit(start="2000-01-01", end="2000-01-02").rows == []
        with pytest.raises(NotFound):
            gateway.audit_record("no-such-request")
    with client(gw) as plain, pytest.raises(PolicyDenied):
        plain.audit()


async def test_the_async_client_reads_the_audit_trail_too(gw: GatewayUnderTest) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    auditor = gw.token("reviewer", role="auditor", tenant=tenant)
    async with AsyncGateway(api_url=gw.base_url, api_key=auditor) as gateway:
        page = await gateway.audit(limit=5)
        assert page.rows == []
