"""``GET /metrics``: Prometheus' text format (see observability.metrics).

Open like ``/health`` (no gateway credential: a scraper has none) unless
``METRICS_TOKEN`` is set, then only with ``Authorization: Bearer <token>``;
``METRICS_ENABLED=false`` answers 404. A scrape is not a request of the
pipeline: it is neither audited nor counted.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from llm_gateway.api import native
from llm_gateway.api.http import error_response, request_id_of
from llm_gateway.errors import AuthenticationFailed, GatewayError, NotFound
from llm_gateway.observability.metrics import CONTENT_TYPE, EndpointGauge, Snapshot
from llm_gateway.runtime import AppState
from llm_gateway.state import StoreError

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request) -> Response:
    """Counters, histograms and gauges in Prometheus' text format (version 0.0.4)."""
    state: AppState = request.app.state.gateway
    if state.metrics is None:
        error: GatewayError = NotFound("not found: metrics are off (METRICS_ENABLED=false)")
        return error_response(error, request_id_of(request), native.error_body)
    token = state.settings.metrics.token
    if token is not None and not _bearer_is(request, token):
        error = AuthenticationFailed("/metrics wants the bearer token METRICS_TOKEN names")
        return error_response(
            error, request_id_of(request), native.error_body, {"www-authenticate": "Bearer"}
        )
    snapshot = await gauges(state)
    body = state.metrics.exposition(snapshot.families())
    return Response(body, media_type=CONTENT_TYPE)


async def gauges(state: AppState) -> Snapshot:
    """Each model endpoint's health and circuit, and the audit backlog, now."""
    checker, breaker = state.routing.health, state.routing.breaker
    endpoints = []
    for d in state.deployments.values():
        for e in (d, *state.config.regional.get(d.name, {}).values()):
            checked = checker.health(e.key) if checker is not None else None
            circuit = await breaker.state(e.key) if breaker is not None else None
            endpoints.append(
                EndpointGauge(
                    model=e.name,
                    region=e.region or "",
                    up=e.enabled and (checked is None or checked.up),
                    circuit=circuit.state.value if circuit is not None else None,
                )
            )
    audit = state.audit.status()
    try:
        pending: int | None = len(await state.confirmations.pending())
    except StoreError:  # the gauge is left out rather than shown wrong
        pending = None
    return Snapshot(
        endpoints, audit.backlog, audit.spool_bytes, audit.spool_limit_bytes, pending
    )  # fmt: skip


def _bearer_is(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
