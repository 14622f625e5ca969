"""``create_app``: wiring and lifespan only.

Configuration is loaded and validated when the app is created, so a bad file
stops the process before it listens; everything with a connection or a task
(database, audit writer, HTTP pools, the demo emulator) is built in the lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llm_gateway import __version__, heap
from llm_gateway.api import (
    admin,
    audit,
    confirmations,
    dlp,
    doors,
    guardrails,
    health,
    metrics,
    models,
    native,
    reports,
    sessions,
    usage,
)
from llm_gateway.api.http import error_response, request_id_of, with_request_id
from llm_gateway.config import GatewayConfig, load_gateway_config
from llm_gateway.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from llm_gateway.observability.logging import configure_logging
from llm_gateway.pipeline.context import new_request_id
from llm_gateway.runtime import AppState
from llm_gateway.settings import Settings, load_settings
from llm_gateway.shutdown import DRAIN

log = logging.getLogger(__name__)


class Gateway:
    """The ASGI application the server runs.

    Every HTTP request gets its id here. Chat calls go straight to their front
    door; everything else (health, models, docs, errors for unknown paths) to
    the FastAPI app, which also runs the lifespan. FastAPI's middleware and
    routing cost about 20 µs a request, a fifth of the gateway's own work,
    and the front doors need none of it.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.doors = {door.path: door for door in doors.DOORS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        send = with_request_id(send, request_id)
        door = self.doors.get(scope["path"]) if scope["method"] == "POST" else None
        if door is None:
            await self.api(scope, receive, send)
            return
        try:
            response = await door.handle(Request(scope, receive), self.api.state.gateway)
        except Exception:
            log.exception("front door failed", extra={"request_id": request_id})
            error = InternalError("the gateway failed to handle the request")
            response = door.error_response(error, request_id)
        await response(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    config: GatewayConfig | None = None,
    *,
    settle_heap: bool = False,
) -> Gateway:
    """The gateway's ASGI app. ``settle_heap``: tune the garbage collector once started
    (:mod:`llm_gateway.heap`), for a process that does nothing but serve."""
    settings = settings or load_settings()
    config = config or load_gateway_config(settings.providers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        state = await AppState.start(settings, config)
        app.state.gateway = state
        if settle_heap:
            heap.settle(settings.http.gc_gen0_threshold)
        try:
            yield {DRAIN: state.drain}  # the server's protocol tells it when shutdown begins
        finally:
            await state.stop()

    api = FastAPI(
        title="LLM Security Gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    api.include_router(health.router)
    api.include_router(metrics.router)
    api.router.routes.extend(doors.routes())
    api.include_router(models.router)
    api.include_router(dlp.router)
    api.include_router(usage.router)
    api.include_router(audit.router)
    api.include_router(reports.router)
    api.include_router(confirmations.router)
    api.include_router(admin.router)
    api.include_router(guardrails.router)
    api.include_router(sessions.router)  # the console's login; never the API's credential
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(Exception, _internal_error)
    return Gateway(api)


def create_app_from_env() -> Gateway:
    """The factory ``llm-gateway serve`` hands to uvicorn (one call per worker)."""
    settings = load_settings()
    configure_logging(settings.log)
    return create_app(settings, settle_heap=True)


def _error(request: Request, error: GatewayError, headers: Mapping[str, str] | None) -> Response:
    """``error`` in the format of the front door the path belongs to, else the native one."""
    door = _DOOR_OF_PATH.get(request.url.path)
    render = door.error_body if door is not None else native.error_body
    return error_response(error, request_id_of(request), render, headers)


_DOOR_OF_PATH = {door.path: door for door in doors.DOORS}
_HTTP_ERRORS: dict[int, type[GatewayError]] = {404: NotFound, 405: MethodNotAllowed}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_ERRORS.get(exc.status_code)
    error: GatewayError
    if kind is None:
        error = InvalidRequest(str(exc.detail), code="http_error")
        error.status = exc.status_code
    else:
        error = kind(str(exc.detail))
    return _error(request, error, exc.headers)  # e.g. Allow on a 405


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(request, InternalError("the gateway failed to handle the request"), None)
