"""``create_app``: wiring and lifespan only.

Configuration is loaded and validated when the app is created, so a bad file
stops the process before it listens; everything with a connection or a task
(database, audit writer, HTTP pools, the demo emulator) is built in the lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llm_gateway import __version__
from llm_gateway.api import doors, health
from llm_gateway.api.http import RequestIdMiddleware, request_id_of
from llm_gateway.api.models import list_models
from llm_gateway.config import GatewayConfig, load_gateway_config
from llm_gateway.observability.logging import configure_logging
from llm_gateway.settings import Settings, load_settings
from llm_gateway.state import AppState


def create_app(settings: Settings | None = None, config: GatewayConfig | None = None) -> FastAPI:
    settings = settings or load_settings()
    config = config or load_gateway_config(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await AppState.start(settings, config)
        app.state.gateway = state
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="LLM Security Gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.include_router(health.router)
    app.router.routes.extend(doors.routes())
    app.router.routes.append(Route("/v1/models", list_models, methods=["GET"]))
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(RequestIdMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """The factory ``llm-gateway serve`` hands to uvicorn (one call per worker)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


def _error(request: Request, status: int, code: str, message: str) -> Response:
    body = {
        "error": {
            "type": code,
            "code": code,
            "message": message,
            "request_id": request_id_of(request),
        }
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return _error(
        request, exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(request, 500, "internal_error", "the gateway failed to handle the request")
