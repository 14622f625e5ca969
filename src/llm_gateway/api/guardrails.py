"""``POST /api/v1/guardrails/grounding``: is an answer grounded in its conversation's tool results?

What evaluation harnesses and agent frameworks call: ``messages`` are OpenAI
Chat Completions messages (assistant messages with ``tool_calls``, ``tool``
messages with their results), ``answer`` the text to check; the answer is
the checker's ``grounding`` object (:mod:`llm_gateway.grounding`). The
options are ``config/guardrails.yaml``'s when grounding is enabled there,
the checker's defaults otherwise, and ``options`` in the body may change any
of them for this call. An action (``guardrails.check``) through the
pipeline: authenticated, decided by the policy, audited with the verdict's
summary (counts and failed checks; never the text). Errors use the native
API's format.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from llm_gateway.api import fields as f
from llm_gateway.api import openai
from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.grounding import Conversation, Options
from llm_gateway.grounding.from_chat import conversation_of
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.pipeline.ground import checked
from llm_gateway.runtime import AppState

router = APIRouter(tags=["guardrails"])

#: How large an answer may be checked (the request body's own limit bounds the rest).
MAX_ANSWER_CHARS = 1_000_000


class GroundingRequest(BaseModel):
    messages: list[dict[str, Any]] = Field(
        description="OpenAI Chat Completions messages: the tool calls and their results"
    )
    answer: str = Field(description="The answer to check (not stored, not logged)")
    options: dict[str, Any] | None = Field(
        None,
        description="Any of require_tool_citation, max_unsupported_claims, "
        "confidence_threshold, check_tool_output_match, detect_contradictions, "
        "flag_speculative_language, blocked_phrases",
    )
    logprobs: list[float] | None = Field(
        None, description="The answer's token log-probabilities, if the provider gave them"
    )


@router.post(
    "/api/v1/guardrails/grounding",
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": GroundingRequest.model_json_schema()}},
        }
    },
)
async def grounding(request: Request) -> Response:
    """Check an answer against the tool results of its conversation."""
    handler = partial(_check, request.app.state.gateway)
    return await run_action(request, "guardrails.check", handler)


async def _check(state: AppState, ctx: RequestContext) -> dict[str, Any]:
    assert isinstance(ctx.payload, ActionCall)
    data = f.decode_body(await ctx.read_body())
    messages = f.req_list(data, "messages")
    answer = "" if data.get("answer") == "" else f.req_str(data, "answer")
    if len(answer) > MAX_ANSWER_CHARS:
        raise f.invalid("answer", f"at most {MAX_ANSWER_CHARS:,} characters")
    options = _options(state.grounding, f.opt_obj(data, "options"))
    logprobs = _logprobs(f.opt_list(data, "logprobs"))
    chat = openai.parse_request(orjson.dumps({"model": "grounding", "messages": messages}))
    conversation = conversation_of(chat) or Conversation(())
    verdict = await checked(conversation, answer, options, logprobs)
    ctx.payload.grounding = verdict.audit_summary()
    return verdict.to_json()


_FLAGS = (
    "require_tool_citation", "check_tool_output_match", "detect_contradictions",
    "flag_speculative_language",
)  # fmt: skip
_KNOWN = (*_FLAGS, "max_unsupported_claims", "confidence_threshold", "blocked_phrases")


def _options(base: Options, given: dict[str, Any] | None) -> Options:
    if not given:
        return base
    unknown = sorted(set(given) - set(_KNOWN))
    if unknown:
        raise f.invalid(f"options.{unknown[0]}", f"one of the options {', '.join(_KNOWN)}")
    changes: dict[str, Any] = {}
    for name in _FLAGS:
        value = f.opt_bool(given, name, "options.")
        if value is not None:
            changes[name] = value
    most = f.opt_int(given, "max_unsupported_claims", "options", minimum=0)
    if most is not None:
        changes["max_unsupported_claims"] = most
    threshold = f.opt_number(given, "confidence_threshold", "options", low=0, high=1)
    if threshold is not None:
        changes["confidence_threshold"] = threshold
    if "blocked_phrases" in given:
        phrases = f.opt_list(given, "blocked_phrases", "options.")
        if not all(isinstance(p, str) and p.strip() for p in phrases):
            raise f.invalid("options.blocked_phrases", "a list of non-empty strings")
        changes["blocked_phrases"] = tuple(phrases)
    return dataclasses.replace(base, **changes)


def _logprobs(values: list[Any]) -> list[float] | None:
    if not values:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v <= 0 for v in values):
        raise f.invalid("logprobs", "a list of log-probabilities (numbers, at most 0)")
    return [float(v) for v in values]
