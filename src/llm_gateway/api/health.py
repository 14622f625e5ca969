"""Liveness and readiness, for load balancers and orchestrators (no authentication)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from llm_gateway.runtime import AppState
from llm_gateway.state import Store, StoreError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class SpoolCheck(BaseModel):
    """The audit spool: rows on local disk, waiting for the database."""

    bytes: int
    limit_bytes: int


class ReadyChecks(BaseModel):
    database: bool
    # "ok"; "spooling: <why>" (rows go to the local spool: still ready); or "failing:
    # <why>" (rows can be stored neither in the database nor in the spool): not ready.
    audit: str
    audit_mode: str | None = None  # strict or fast
    spool: SpoolCheck | None = None  # None: no spool (AUDIT_SPOOL_MAX_MB=0)
    state: bool  # the shared state store answers (always, in-process; Redis when configured)
    config: bool
    models: int
    policy: str | None = None  # the revision in force
    # Why the policy files on disk were refused at the last reload (the revision in
    # force stays); None when the files in force are the files on disk.
    policy_reload_error: str | None = None
    dlp: Literal["on", "off"] = "off"
    ner: str = "off"  # available, unavailable: <why> (the gateway runs without it), or off


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


@router.get("/health")
async def health() -> Health:
    """The process is up and serving HTTP."""
    return Health()


@router.get("/ready", responses={503: {"model": Ready, "description": "Not ready"}})
async def ready(request: Request, response: Response) -> Ready:
    """Ready for traffic: the database and the state store answer, audit rows can be
    committed, the configuration is loaded, a model is usable."""
    state: AppState | None = getattr(request.app.state, "gateway", None)
    database = state is not None and await state.db.ping()
    shared = state is not None and await _answers(state.store)
    models = len(state.usable_models()) if state is not None else 0
    audit = state.audit.status() if state is not None else None
    ok = (
        database and audit is not None and audit.failing is None and shared and models > 0
    )  # fmt: skip
    if not ok:
        response.status_code = 503
    return Ready(
        status="ready" if ok else "not_ready",
        checks=ReadyChecks(
            database=database,
            audit=audit.summary() if audit is not None else "failing: not started",
            audit_mode=audit.mode.value if audit is not None else None,
            spool=SpoolCheck(bytes=audit.spool_bytes, limit_bytes=audit.spool_limit_bytes)
            if audit is not None and audit.spool_limit_bytes
            else None,
            state=shared,
            config=state is not None,
            models=models,
            policy=state.policy.revision if state is not None else None,
            policy_reload_error=state.policy.reload_error if state is not None else None,
            dlp="on" if state is not None and state.dlp is not None else "off",
            ner=state.dlp.ner_status if state is not None and state.dlp is not None else "off",
        ),
    )


async def _answers(store: Store) -> bool:
    try:
        await store.ping()
    except StoreError:  # unreachable, or refusing us (a StoreUnavailable is one too)
        return False
    return True
