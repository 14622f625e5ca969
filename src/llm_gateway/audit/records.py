"""The audit row for a request, built from its :class:`~llm_gateway.records.RequestRecord`.

By default text is never stored: only SHA-256 digests and lengths of the
prompt and of the answer (``AUDIT_STORE_CONTENT=digest``). ``redacted`` also
keeps the request as it left the gateway (after DLP: what the provider saw)
and the answer before DLP restored anything, each cut to a character budget;
``none`` keeps neither text nor digests. Free-form fields a caller controls
are cut to their column's width and cleaned of what a database refuses (NUL,
lone surrogates), so a caller cannot make the row unstorable, and so lose it,
with an odd claim or model name.
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.audit.sinks import Row
from llm_gateway.audit.writer import AuditWriter
from llm_gateway.chat import ChatRequest, TextPart
from llm_gateway.records import Digest, RequestRecord
from llm_gateway.settings.storage import AuditContent

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


def audit_row(
    record: RequestRecord, content: AuditContent = AuditContent.DIGEST, max_chars: int = 100_000
) -> Row:
    prompt, response = record.prompt, record.response
    if content is AuditContent.NONE:
        prompt = response = None
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
        "prompt_text": None,
        "response_text": None,
    }
    for column, width in _WIDTHS.items():
        value = row[column]
        if value is not None:
            row[column] = storable(value[:width])
    if content is AuditContent.REDACTED:
        if record.request is not None:
            row["prompt_text"] = transcript(record.request, max_chars)
        if record.answer is not None:
            row["response_text"] = storable(record.answer[:max_chars])
    return row


def transcript(request: ChatRequest, max_chars: int) -> str:
    """The request as JSON, its texts cut so that together they keep at most ``max_chars``."""
    budget = [max_chars]

    def kept(text: str) -> str:
        piece = text[: budget[0]]
        budget[0] -= len(piece)
        return storable(piece)

    messages = []
    for m in request.messages:
        message: dict[str, Any] = {"role": m.role}
        message["text"] = kept("".join(p.text for p in m.content if isinstance(p, TextPart)))
        if m.tool_calls:
            message["tool_calls"] = [
                {"name": c.name, "arguments": kept(c.arguments)} for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            message["tool_call_id"] = m.tool_call_id
        messages.append(message)
    whole = {"system": kept(request.system) if request.system else None, "messages": messages}
    return orjson.dumps(whole).decode()


#: The opening row of a stream says so until the stream's own row replaces it.
STREAM_UNFINISHED = "stream_unfinished"


class AuditRecorder:
    """The audit trail as a recorder (and a journal): each record's row durable before the
    answer completes, and a stream's opening row before its first byte."""

    def __init__(
        self,
        writer: AuditWriter,
        content: AuditContent = AuditContent.DIGEST,
        max_chars: int = 100_000,
    ) -> None:
        self.writer = writer
        self.content = content
        self.max_chars = max_chars

    def admit(self) -> None:
        self.writer.admit()

    async def opened(self, record: RequestRecord) -> None:
        row = audit_row(record, self.content, self.max_chars)
        row["error_code"] = STREAM_UNFINISHED  # what a replay of it after a crash will say
        await self.writer.opened(row)

    async def record(self, record: RequestRecord) -> None:
        await self.writer.write(audit_row(record, self.content, self.max_chars))


def _json(items: tuple[Any, ...]) -> str | None:
    return orjson.dumps(items).decode() if items else None


def storable(text: str) -> str:
    """``text`` without the characters PostgreSQL cannot store in a text column."""
    if text.isascii() and "\x00" not in text:
        return text
    cleaned = text.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", errors="replace").decode("utf-8")
