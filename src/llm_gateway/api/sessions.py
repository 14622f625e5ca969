"""``/auth/login``, ``/auth/callback``, ``/auth/logout``, ``/auth/session``: the console's login.

The flow is :mod:`llm_gateway.auth.sessions`'; these routes only carry its
cookies and redirects. The session cookie is read by ``/auth/session`` (and,
later, the console's own routes) alone: the chat and management API never
accept it, only a bearer credential. Errors are the native JSON error body.
Without ``SESSION_ISSUER`` every route answers 404 ``sessions_not_configured``.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, RedirectResponse, Response

from llm_gateway.api import native
from llm_gateway.api.http import error_response, request_id_of
from llm_gateway.auth.sessions import FLOW_LIFETIME_S, Sessions
from llm_gateway.errors import GatewayError, IdentityUnavailable, NotFound
from llm_gateway.runtime import AppState

log = logging.getLogger(__name__)
router = APIRouter(tags=["sessions"])

FLOW_COOKIE_PATH = "/auth/callback"


class SessionInfo(BaseModel):
    user_id: str
    role: str
    tier: str | None
    team: str | None
    tenant: str | None
    groups: list[str]
    auth_method: str


class LoggedOut(BaseModel):
    logged_out: bool = True
    end_session_url: str | None = None  # the IdP's logout page, to end the IdP's session too


def _sessions(request: Request) -> Sessions:
    app = request.app
    found: Sessions | None = getattr(app.state, "sessions", None)
    if found is None:
        state: AppState = app.state.gateway
        try:
            made = Sessions.from_settings(
                state.settings.auth, list(state.config.identity.identity.issuers), state.transport
            )
        except ValueError as exc:
            log.error("sessions: %s", exc)
            raise IdentityUnavailable(
                "login is misconfigured (see the gateway's log)", code="sessions_misconfigured"
            ) from None
        if made is None:
            raise NotFound(
                "login is not configured (SESSION_ISSUER)", code="sessions_not_configured"
            )
        app.state.sessions = found = made
    return found


def _error(request: Request, error: GatewayError) -> Response:
    return error_response(error, request_id_of(request), native.error_body)


def _flow_cookie_name(sessions: Sessions) -> str:
    return f"{sessions.settings.session_cookie_name}_flow"


def _set_cookie(
    response: Response, sessions: Sessions, name: str, value: str, max_age: int, path: str
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True,
        secure=sessions.settings.session_cookie_secure, samesite="lax",
    )  # fmt: skip


def _clear_cookie(response: Response, sessions: Sessions, name: str, path: str) -> None:
    response.delete_cookie(
        name, path=path, httponly=True, secure=sessions.settings.session_cookie_secure,
        samesite="lax",
    )  # fmt: skip


@router.get("/auth/login", status_code=302, response_class=RedirectResponse)
async def login(request: Request) -> Response:
    """Redirect to the identity provider's login page (authorization code with PKCE)."""
    try:
        sessions = _sessions(request)
        started = await sessions.login()
    except GatewayError as error:
        return _error(request, error)
    response = RedirectResponse(started.url, status_code=302)
    response.headers["cache-control"] = "no-store"
    _set_cookie(
        response, sessions, _flow_cookie_name(sessions), started.flow_cookie,
        FLOW_LIFETIME_S, FLOW_COOKIE_PATH,
    )  # fmt: skip
    return response


@router.get("/auth/callback", status_code=303, response_class=RedirectResponse)
async def callback(request: Request) -> Response:
    """Where the identity provider sends the browser back: sets the session cookie."""
    try:
        sessions = _sessions(request)
        principal = await sessions.callback(
            dict(request.query_params), request.cookies.get(_flow_cookie_name(sessions))
        )
    except GatewayError as error:
        return _error(request, error)
    response = RedirectResponse(sessions.settings.session_home, status_code=303)
    response.headers["cache-control"] = "no-store"
    _clear_cookie(response, sessions, _flow_cookie_name(sessions), FLOW_COOKIE_PATH)
    _set_cookie(
        response, sessions, sessions.settings.session_cookie_name, sessions.issue(principal),
        sessions.settings.session_lifetime_seconds, "/",
    )  # fmt: skip
    log.info("sessions: %s logged in", principal.user_id)
    return response


@router.get("/auth/session", response_model=SessionInfo)
async def session(request: Request) -> Response:
    """Who is logged in, from the session cookie; 401 without a valid one."""
    try:
        sessions = _sessions(request)
        principal = sessions.principal(request.cookies.get(sessions.settings.session_cookie_name))
    except GatewayError as error:
        return _error(request, error)
    info = SessionInfo(
        user_id=principal.user_id, role=principal.role, tier=principal.tier,
        team=principal.team, tenant=principal.tenant, groups=list(principal.groups),
        auth_method=principal.auth_method,
    )  # fmt: skip
    return JSONResponse(info.model_dump(), headers={"cache-control": "no-store"})


@router.post("/auth/logout", response_model=LoggedOut)
async def logout(request: Request) -> Response:
    """Clear the session cookie; the answer names the IdP's logout page, if it has one."""
    try:
        sessions = _sessions(request)
    except GatewayError as error:
        return _error(request, error)
    answer = LoggedOut(end_session_url=await sessions.end_session_url())
    response = JSONResponse(answer.model_dump(), headers={"cache-control": "no-store"})
    _clear_cookie(response, sessions, sessions.settings.session_cookie_name, "/")
    return response
