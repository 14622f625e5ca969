"""The audit row for a request, built from its :class:`~llm_gateway.records.RequestRecord`.

Text is never stored: only SHA-256 digests and lengths of the prompt and of
the answer. Free-form fields a caller controls are cut to their column's width
and cleaned of what a database refuses (NUL, lone surrogates), so a caller
cannot make the row unstorable, and so lose it, with an odd claim or model name.
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.audit.sinks import Row
from llm_gateway.audit.writer import AuditWriter
from llm_gateway.records import Digest, RequestRecord

_WIDTHS = {
    "user_id": 255,
    "team": 255,
    "tenant": 255,
    "key_id": 64,
    "model_requested": 255,
    "grounding": 255,
}


def digest(texts: list[str]) -> tuple[str, int]:
    found = Digest.of(texts)
    return found.sha256, found.chars


def audit_row(record: RequestRecord) -> Row:
    prompt, response = record.prompt, record.response
    row: dict[str, Any] = {
        "request_id": record.request_id,
        "timestamp": record.timestamp,
        "user_id": record.user_id,
        "team": record.team,
        "tenant": record.tenant,
        "key_id": record.key_id,
        "auth_method": record.auth_method,
        "endpoint": record.endpoint,
        "model_requested": record.model_requested,
        "model": record.model,
        "provider": record.provider,
        "upstream_model": record.upstream_model,
        "stream": record.stream,
        "status": record.status,
        "error_code": record.error_code,
        "latency_ms": record.latency_ms,
        "tokens_in": record.tokens_in,
        "tokens_out": record.tokens_out,
        "tokens_used": record.tokens_used,
        "tokens_estimated": record.tokens_estimated,
        "cost_usd": record.cost_usd,
        "prompt_sha256": prompt.sha256 if prompt else None,
        "prompt_chars": prompt.chars if prompt else None,
        "response_sha256": response.sha256 if response else None,
        "response_chars": response.chars if response else None,
        "policy_decision": record.policy_decision,
        "policy_reasons": _json(record.policy_reasons),
        "policy_revision": record.policy_revision,
        "policy_eval_us": record.policy_eval_us,
        "dlp_action": record.dlp_action,
        "dlp_findings": _json(record.dlp_findings),
        "attempts": _json(tuple(a.as_json() for a in record.attempts)),
        "queued_ms": record.queued_ms,
        "route": record.route,
        "confirmation": record.confirmation,
        "dlp_ner": record.dlp_ner,
        "grounding": record.grounding,
    }
    for column, width in _WIDTHS.items():
        value = row[column]
        if value is not None:
            row[column] = storable(value[:width])
    return row


#: The opening row of a stream says so until the stream's own row replaces it.
STREAM_UNFINISHED = "stream_unfinished"


class AuditRecorder:
    """The audit trail as a recorder (and a journal): each record's row durable before the
    answer completes, and a stream's opening row before its first byte."""

    def __init__(self, writer: AuditWriter) -> None:
        self.writer = writer

    def admit(self) -> None:
        self.writer.admit()

    async def opened(self, record: RequestRecord) -> None:
        row = audit_row(record)
        row["error_code"] = STREAM_UNFINISHED  # what a replay of it after a crash will say
        await self.writer.opened(row)

    async def record(self, record: RequestRecord) -> None:
        await self.writer.write(audit_row(record))


def _json(items: tuple[Any, ...]) -> str | None:
    return orjson.dumps(items).decode() if items else None


def storable(text: str) -> str:
    """``text`` without the characters PostgreSQL cannot store in a text column."""
    if text.isascii() and "\x00" not in text:
        return text
    cleaned = text.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", errors="replace").decode("utf-8")
