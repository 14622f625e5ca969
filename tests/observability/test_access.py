"""The access log as a recorder: one ``request`` line per record, with its fields."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from llm_gateway.observability.access import AccessLog
from llm_gateway.records import RequestRecord


def _record(**fields: object) -> RequestRecord:
    values: dict[str, object] = dict.fromkeys(RequestRecord.__slots__)
    values.update(
        request_id="r1", timestamp=datetime.now(UTC), endpoint="openai", user_id="alice",
        stream=False, attempts=(), status=429, error_code="rate_limited", latency_ms=12.3456,
        tokens_in=0, tokens_out=0, tokens_estimated=False, cost_usd=0.0, policy_reasons=(),
        dlp_findings=(), model="gpt-emu",
    )  # fmt: skip
    values.update(fields)
    return RequestRecord(**values)  # type: ignore[arg-type]


async def test_each_record_is_one_line_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="llm_gateway.access"):
        await AccessLog().record(_record())
    (line,) = caplog.records
    assert line.getMessage() == "request"
    fields = {k: getattr(line, k) for k in ("request_id", "endpoint", "status", "model", "user")}
    assert fields == {
        "request_id": "r1", "endpoint": "openai", "status": 429, "model": "gpt-emu",
        "user": "alice",
    }  # fmt: skip
    assert (line.error_code, line.latency_ms) == ("rate_limited", 12.35)  # type: ignore[attr-defined]


async def test_nothing_is_written_above_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llm_gateway.access"):
        await AccessLog().record(_record())
    assert caplog.records == []
