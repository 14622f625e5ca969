"""``GET /v1/models``: the models this caller may use, in OpenAI's or Anthropic's list format.

The Anthropic SDK sends ``anthropic-version`` on every call; that header picks
Anthropic's shape, anything else gets OpenAI's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.api import anthropic, openai
from llm_gateway.api.http import client_ip, error_response, request_id_of
from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.config import Deployment
from llm_gateway.errors import GatewayError
from llm_gateway.policy.inputs import action_input
from llm_gateway.runtime import AppState


async def list_models(request: Request) -> Response:
    state: AppState = request.app.state.gateway
    anthropic_client = "anthropic-version" in request.headers
    try:
        credentials = Credentials.from_headers(request.headers.raw)
        principal = await state.authenticator.authenticate(credentials)
    except GatewayError as error:
        render = anthropic.error_body if anthropic_client else openai.error_body
        return error_response(error, request_id_of(request), render)
    models = [d for d in state.usable_models() if await _may_use(state, principal, d, request)]
    created = int(state.started_at)
    body = _anthropic_list(models, created) if anthropic_client else _openai_list(models, created)
    return Response(orjson.dumps(body), media_type="application/json")


async def _may_use(
    state: AppState, principal: Principal, deployment: Deployment, request: Request
) -> bool:
    """Listed if the policy would let this principal call the model."""
    document = action_input(
        principal,
        "models.list",
        model=deployment.name,
        client_ip=client_ip(request),
        environment=state.settings.policy.environment,
    )
    return (await state.policy.decide(document)).allow


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
