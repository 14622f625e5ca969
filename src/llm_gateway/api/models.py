"""``GET /v1/models``: the models this caller may use, in OpenAI's or Anthropic's list format.

An action (``models.list``) through the pipeline, audited, with every model
decided in one policy call: a model is listed if the policy would let this
caller use it. The Anthropic SDK sends ``anthropic-version`` on every call;
that header picks Anthropic's shape (and error format), anything else gets OpenAI's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from llm_gateway.api import anthropic, openai
from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.config import Deployment
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.runtime import AppState

router = APIRouter(tags=["models"])


class OpenAIModel(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    demo: bool


class OpenAIModelList(BaseModel):
    """OpenAI's list format (the default); Anthropic's when ``anthropic-version`` is sent."""

    object: str = "list"
    data: list[OpenAIModel]


@router.get("/v1/models", response_model=OpenAIModelList, responses=ERRORS)
async def list_models(request: Request) -> Response:
    """The models the caller's policy allows, that are configured and usable."""
    state: AppState = request.app.state.gateway
    anthropic_client = "anthropic-version" in request.headers
    models = {d.name: d for d in state.usable_models()}
    handler = partial(_listing, models, int(state.started_at), anthropic_client)
    render = anthropic.error_body if anthropic_client else openai.error_body
    return await run_action(request, "models.list", handler, targets=tuple(models), render=render)


async def _listing(
    models: dict[str, Deployment], created: int, anthropic_client: bool, ctx: RequestContext
) -> dict[str, Any]:
    assert isinstance(ctx.payload, ActionCall)
    allowed = [models[name] for name in ctx.payload.permitted]
    return _anthropic_list(allowed, created) if anthropic_client else _openai_list(allowed, created)


def _openai_list(models: list[Deployment], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": d.name,
                "object": "model",
                "created": created,
                "owned_by": "llm-gateway-demo" if d.demo else d.provider.value,
                "demo": d.demo,
            }
            for d in models
        ],
    }


def _anthropic_list(models: list[Deployment], created: int) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    data = [
        {
            "type": "model",
            "id": d.name,
            "display_name": f"{d.name} (demo)" if d.demo else d.name,
            "created_at": stamp,
        }
        for d in models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
