"""A settled request's context, as the one record every recorder gets."""

from __future__ import annotations

from llm_gateway.pipeline.context import ActionCall, Attempt, ChatCall, RequestContext
from llm_gateway.records import AttemptRecord, Digest, RequestRecord


def request_record(ctx: RequestContext) -> RequestRecord:
    principal, deployment, usage, decision, report = (
        ctx.principal, ctx.deployment, ctx.usage, ctx.decision, ctx.dlp,
    )  # fmt: skip
    call = ctx.payload if isinstance(ctx.payload, ChatCall) else None
    chat = call.request if call is not None else None
    answer = ctx.response_text
    if call is not None and call.response_before_restore is not None:
        answer = "".join(call.response_before_restore)  # never digest values DLP restored
    verdict = None
    if decision is not None:
        verdict = "error" if decision.error else "allow" if decision.allow else "deny"
    found = report is not None and bool(report.findings)
    strongest = report.strongest_action if report is not None and found else None
    return RequestRecord(
        request_id=ctx.request_id,
        timestamp=ctx.received_at,
        endpoint=ctx.endpoint,
        user_id=principal.user_id if principal else None,
        role=principal.role if principal else None,
        team=principal.team if principal else None,
        tenant=principal.tenant if principal else None,
        key_id=principal.key_id if principal else None,
        auth_method=principal.auth_method if principal else None,
        model_requested=call.model_requested if call is not None else None,
        model=deployment.name if deployment else None,
        provider=deployment.provider.value if deployment else None,
        upstream_model=deployment.upstream_model if deployment else None,
        stream=bool(chat and chat.stream),
        attempts=tuple(_attempt(a) for a in ctx.attempts),
        status=ctx.status,
        error_code=ctx.error.code if ctx.error else None,
        latency_ms=round(ctx.elapsed_ms, 3),
        tokens_in=usage.input_tokens if usage else 0,
        tokens_out=usage.output_tokens if usage else 0,
        tokens_estimated=bool(usage and usage.estimated),
        cost_usd=ctx.cost_usd,
        prompt=Digest.of(chat.texts()) if chat is not None else None,
        response=Digest.of([answer]) if answer is not None else None,
        policy_decision=verdict,
        policy_reasons=decision.reasons if decision is not None else (),
        policy_revision=decision.revision if decision is not None else None,
        policy_eval_us=round(decision.eval_us, 1) if decision is not None else None,
        dlp_action=strongest.value if strongest else None,
        dlp_findings=tuple(report.summary()) if report is not None and found else (),
        queued_ms=ctx.limits.queued_ms if ctx.limits is not None else None,
        route=call.route if call is not None else None,
        confirmation=ctx.payload.confirmation,
        dlp_ner=report.ner_summary if report is not None else None,
        grounding=_grounding(call) if call is not None else _action_grounding(ctx),
        first_token_ms=ctx.first_token_ms,
        stages=ctx.stage_seconds(),
        request=chat,
        answer=answer,
    )


def _grounding(call: ChatCall) -> str | None:
    if call.grounding is None:
        return None
    return call.grounding.audit_summary() + (" retried" if call.grounding_retried else "")


def _action_grounding(ctx: RequestContext) -> str | None:
    return ctx.payload.grounding if isinstance(ctx.payload, ActionCall) else None


def _attempt(attempt: Attempt) -> AttemptRecord:
    d = attempt.deployment
    return AttemptRecord(
        d.name, d.provider.value, d.upstream_model,
        attempt.status, attempt.error_code, attempt.latency_ms,
    )  # fmt: skip
