"""The emulator's ASGI app: the three providers' routes plus a control API for tests.

One app serves all three wire formats because their paths do not collide
(except ``GET /v1/models``, which answers in Anthropic's shape when the
request carries ``anthropic-version``, as the Anthropic SDK's does). Every
provider request is logged before it is checked, so a test can assert on what
the gateway sent even when the emulator rejected it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llm_gateway.emulators import anthropic, ollama, openai
from llm_gateway.emulators.state import EmulatorConfig, EmulatorState
from llm_gateway.emulators.transport import json_response

Handler = Callable[[Request, EmulatorState, bytes], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _provider(handler: Handler, state: EmulatorState) -> Endpoint:
    """Bind a provider handler to the state, logging the request before anything else."""

    async def endpoint(request: Request) -> Response:
        raw = await state.record(request)
        return await handler(request, state, raw)

    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _list_models(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``GET /v1/models``: Anthropic's shape for Anthropic clients, else OpenAI's."""
    if "anthropic-version" in request.headers:
        return await anthropic.list_models(request, state, raw)
    return await openai.list_models(request, state, raw)


def _control_routes(state: EmulatorState) -> list[Route]:
    """``/_emulator/requests``: read (GET) or clear (DELETE) the request log."""

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear()
            return Response(status_code=204)
        return json_response(200, state.requests())

    return [Route("/_emulator/requests", requests, methods=["GET", "DELETE"])]


def create_emulator_app(
    *,
    api_key: str | None = None,
    default_latency_ms: int = 0,
    reply_prefix: str = "Echo: ",
) -> Starlette:
    """Build the emulator app.

    ``api_key``: when set, OpenAI and Anthropic requests must carry exactly this
    key (otherwise any non-empty key is accepted, as auth is not what is being
    tested). ``default_latency_ms``: a wait before every scripted answer,
    unless a directive sets ``latency_ms``. ``reply_prefix``: what the default
    echo reply starts with.
    """
    state = EmulatorState(EmulatorConfig(api_key, default_latency_ms, reply_prefix))
    provider_routes = [
        ("/v1/chat/completions", openai.chat_completions, "POST"),
        ("/v1/models", _list_models, "GET"),
        ("/v1/messages", anthropic.messages, "POST"),
        ("/api/chat", ollama.chat, "POST"),
        ("/api/tags", ollama.tags, "GET"),
        ("/api/version", ollama.version, "GET"),
    ]
    routes = [
        Route(path, _provider(handler, state), methods=[method])
        for path, handler, method in provider_routes
    ]
    app = Starlette(routes=routes + _control_routes(state))
    app.state.emulator = state
    return app


def emulator_state(app: Starlette) -> EmulatorState:
    """The :class:`EmulatorState` of an app made by :func:`create_emulator_app`."""
    state = getattr(app.state, "emulator", None)
    if not isinstance(state, EmulatorState):
        raise TypeError("not an emulator app (made by create_emulator_app)")
    return state
