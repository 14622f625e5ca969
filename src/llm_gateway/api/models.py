"""``GET /v1/models``: the names this caller may ask for, in OpenAI's or Anthropic's format.

An action (``models.list``) through the pipeline, audited, with every name
decided in one policy call: a name is listed if the policy would let this
caller use it. The names are the usable models, the fallback chains with a
usable member, and ``auto`` (each entry's ``kind`` says which). The Anthropic
SDK sends ``anthropic-version`` on every call; that header picks Anthropic's
shape (and error format), anything else gets OpenAI's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from llm_gateway.api import anthropic, openai
from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.routing import Kind
from llm_gateway.runtime import AppState

router = APIRouter(tags=["models"])


class OpenAIModel(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    demo: bool
    kind: Kind  # a model, a fallback chain, or auto (the gateway chooses)


@dataclass(frozen=True, slots=True)
class _Name:
    """One name a request may ask for, as a listing shows it."""

    id: str
    kind: Kind
    owned_by: str
    demo: bool = False
    members: tuple[str, ...] = ()  # a chain's or auto's usable models: one must be allowed

    @property
    def display_name(self) -> str:
        if self.kind == "chain":
            return f"{self.id} (fallback chain)"
        if self.kind == "auto":
            return f"{self.id} (the gateway chooses the model)"
        return f"{self.id} (demo)" if self.demo else self.id


class OpenAIModelList(BaseModel):
    """OpenAI's list format (the default); Anthropic's when ``anthropic-version`` is sent."""

    object: str = "list"
    data: list[OpenAIModel]


@router.get("/v1/models", response_model=OpenAIModelList, responses=ERRORS)
async def list_models(request: Request) -> Response:
    """The models, chains and ``auto`` the caller's policy allows, that can be served."""
    state: AppState = request.app.state.gateway
    anthropic_client = "anthropic-version" in request.headers
    names = {n.id: n for n in _servable(state)}
    handler = partial(_listing, names, int(state.started_at), anthropic_client)
    render = anthropic.error_body if anthropic_client else openai.error_body
    return await run_action(request, "models.list", handler, targets=tuple(names), render=render)


def _servable(state: AppState) -> list[_Name]:
    """What could serve a request now: a chain or ``auto`` with at least one usable model."""
    names = []
    for name, kind in state.resolver.names():
        candidates = state.resolver.resolve(name).candidates
        if not any(d.enabled for d in candidates):
            continue
        if kind == "model":
            d = candidates[0]
            if not d.enabled:
                continue
            owner = "llm-gateway-demo" if d.demo else d.provider.value
            names.append(_Name(name, kind, owner, d.demo))
        else:
            members = tuple(d.name for d in candidates if d.enabled)
            names.append(_Name(name, kind, "llm-gateway", members=members))
    return names


async def _listing(
    names: dict[str, _Name], created: int, anthropic_client: bool, ctx: RequestContext
) -> dict[str, Any]:
    assert isinstance(ctx.payload, ActionCall)
    permitted = set(ctx.payload.permitted)
    allowed = [
        names[name]
        for name in ctx.payload.permitted
        if not names[name].members or permitted.intersection(names[name].members)
    ]  # a chain is listed only if the caller may use one of its models
    return _anthropic_list(allowed, created) if anthropic_client else _openai_list(allowed, created)


def _openai_list(names: list[_Name], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": n.id,
                "object": "model",
                "created": created,
                "owned_by": n.owned_by,
                "demo": n.demo,
                "kind": n.kind,
            }
            for n in names
        ],
    }


def _anthropic_list(names: list[_Name], created: int) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    data = [
        {"type": "model", "id": n.id, "display_name": n.display_name, "created_at": stamp}
        for n in names
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


class EndpointHealth(BaseModel):
    """One model's endpoint as routing sees it now."""

    model: str
    region: str | None  # None: the model's own endpoint
    provider: str
    enabled: bool  # False: a setting it needs is missing
    disabled_reason: str | None
    up: bool  # False only when its health checks marked it down
    health_checked: bool
    consecutive_failures: int
    last_error: str | None  # the last failed probe's code (kept after a recovery)
    circuit: str | None  # closed, open, half_open; None without a breaker (or no answer)
    latency_ewma_ms: float | None
    in_flight: int


class ModelsHealth(BaseModel):
    usable: int
    endpoints: list[EndpointHealth]


@router.get("/api/v1/models/health", response_model=ModelsHealth, responses=ERRORS)
async def models_health(request: Request) -> Response:
    """Each model's endpoints: health checks, circuit, latency and load (administrators,
    by the policy's ``models.health``)."""
    state: AppState = request.app.state.gateway
    return await run_action(request, "models.health", partial(_health, state))


async def _health(state: AppState, ctx: RequestContext) -> dict[str, Any]:
    router, checker, breaker = state.routing.router, state.routing.health, state.routing.breaker
    endpoints = [
        e
        for d in state.deployments.values()
        for e in (d, *state.config.regional.get(d.name, {}).values())
    ]
    rows = []
    for e in endpoints:
        checked = checker.health(e.key) if checker is not None else None
        circuit = await breaker.state(e.key) if breaker is not None else None
        rows.append(
            EndpointHealth(
                model=e.name,
                region=e.region,
                provider=e.provider.value,
                enabled=e.enabled,
                disabled_reason=e.disabled_reason,
                up=checked is None or checked.up,
                health_checked=checked is not None,
                consecutive_failures=checked.consecutive_failures if checked else 0,
                last_error=checked.last_error if checked else None,
                circuit=circuit.state.value if circuit is not None else None,
                latency_ewma_ms=router.tracker.load.ewma_ms(e.key),
                in_flight=router.tracker.in_flight(e.key),
            ).model_dump()
        )
    return {"usable": len(state.usable_models()), "endpoints": rows}
