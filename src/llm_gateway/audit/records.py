"""The audit row for a request, built from its context.

Text is never stored: only SHA-256 digests and lengths of the prompt and of
the answer. Free-form fields a caller controls are cut to their column's width
and cleaned of what a database refuses (NUL, lone surrogates), so a caller
cannot make the row unstorable, and so lose it, with an odd claim or model name.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from llm_gateway.audit.sinks import Row

if TYPE_CHECKING:  # the pipeline imports this module
    from llm_gateway.pipeline.context import RequestContext

_WIDTHS = {
    "user_id": 255,
    "team": 255,
    "tenant": 255,
    "key_id": 64,
    "model_requested": 255,
}


def digest(texts: list[str]) -> tuple[str, int]:
    sha = hashlib.sha256()
    chars = 0
    for text in texts:
        sha.update(text.encode("utf-8", errors="surrogatepass"))
        sha.update(b"\x00")
        chars += len(text)
    return sha.hexdigest(), chars


def audit_row(ctx: RequestContext) -> Row:
    principal, chat, deployment, usage = ctx.principal, ctx.chat, ctx.deployment, ctx.usage
    row: dict[str, Any] = {
        "request_id": ctx.request_id,
        "timestamp": ctx.received_at,
        "user_id": principal.user_id if principal else None,
        "team": principal.team if principal else None,
        "tenant": principal.tenant if principal else None,
        "key_id": principal.key_id if principal else None,
        "auth_method": principal.auth_method if principal else None,
        "endpoint": ctx.endpoint,
        "model_requested": ctx.model_requested,
        "model": deployment.name if deployment else None,
        "provider": deployment.provider.value if deployment else None,
        "upstream_model": deployment.upstream_model if deployment else None,
        "stream": bool(chat and chat.stream),
        "status": ctx.status,
        "error_code": ctx.error.code if ctx.error else None,
        "latency_ms": round(ctx.elapsed_ms, 3),
        "tokens_in": usage.input_tokens if usage else 0,
        "tokens_out": usage.output_tokens if usage else 0,
        "tokens_used": usage.total_tokens if usage else 0,
        "tokens_estimated": bool(usage and usage.estimated),
        "cost_usd": ctx.cost_usd,
        "prompt_sha256": None,
        "prompt_chars": None,
        "response_sha256": None,
        "response_chars": None,
        "policy_decision": None,
        "policy_reasons": None,
        "policy_revision": None,
        "policy_eval_us": None,
        "dlp_action": None,
        "dlp_findings": None,
    }
    if (decision := ctx.decision) is not None:
        verdict = "error" if decision.error else "allow" if decision.allow else "deny"
        row["policy_decision"] = verdict
        if decision.reasons:
            row["policy_reasons"] = orjson.dumps(decision.reasons).decode()
        row["policy_revision"] = decision.revision
        row["policy_eval_us"] = round(decision.eval_us, 1)
    if (report := ctx.dlp) is not None and report.findings:
        strongest = report.strongest_action
        row["dlp_action"] = strongest.value if strongest else None
        row["dlp_findings"] = orjson.dumps(report.summary()).decode()
    if chat is not None:
        row["prompt_sha256"], row["prompt_chars"] = digest(chat.texts())
    answer = ctx.response_text
    if ctx.response_before_restore is not None:  # never digest values DLP restored
        answer = "".join(ctx.response_before_restore)
    if answer is not None:
        row["response_sha256"], row["response_chars"] = digest([answer])
    for column, width in _WIDTHS.items():
        value = row[column]
        if value is not None:
            row[column] = storable(value[:width])
    return row


def storable(text: str) -> str:
    """``text`` without the characters PostgreSQL cannot store in a text column."""
    if text.isascii() and "\x00" not in text:
        return text
    cleaned = text.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", errors="replace").decode("utf-8")
