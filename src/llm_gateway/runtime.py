"""Everything a running gateway holds, built in the lifespan and handed to whoever needs it.

There is no module-level mutable state: the app keeps one ``AppState`` on
``app.state.gateway``, so two gateways can live in one process (as the tests do).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial

from llm_gateway import providers
from llm_gateway.audit.records import AuditRecorder
from llm_gateway.audit.sinks import sink_for
from llm_gateway.audit.spool import Spool
from llm_gateway.audit.writer import SPOOL_FILLING, AuditWriter
from llm_gateway.auth import Authenticator, identity_verifiers
from llm_gateway.auth.api_keys import ApiKeyStore
from llm_gateway.auth.directory import Directory
from llm_gateway.auth.inheritance import Inheritance
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.config import DEMO_MODEL, Deployment, GatewayConfig, Provider
from llm_gateway.dlp.service import DlpService
from llm_gateway.dlp.vault_crypto import resolve_vault_key
from llm_gateway.emulators import EmulatorServer
from llm_gateway.grounding import Options
from llm_gateway.grounding.options import options_of
from llm_gateway.hitl import Checkpoints
from llm_gateway.hitl.confirmations import Confirmations
from llm_gateway.hitl.expiry import ExpirySweeper
from llm_gateway.hitl.mfa import MfaCodes
from llm_gateway.observability.access import AccessLog
from llm_gateway.observability.alerts import AlertRecorder, Alerts, breaker_listener, build_alerts
from llm_gateway.observability.metrics import Metrics, MetricsRecorder
from llm_gateway.observability.tracing import Tracing, start_tracing
from llm_gateway.pipeline import Pipeline, build_action_pipeline, build_pipeline
from llm_gateway.pipeline.confirm import Confirm
from llm_gateway.pipeline.ground import Ground
from llm_gateway.policy import PolicyService
from llm_gateway.ratelimit import BudgetRecorder, Limiter
from llm_gateway.records import Recorder
from llm_gateway.routing import Resolver, StaleCache
from llm_gateway.routing.setup import Parts, build_router
from llm_gateway.settings import AutoOnOff, Settings
from llm_gateway.settings.storage import AuditMode
from llm_gateway.shutdown import Drain
from llm_gateway.state import Store, open_store
from llm_gateway.storage import Database
from llm_gateway.transport import AiohttpTransport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AppState:
    settings: Settings
    config: GatewayConfig
    deployments: dict[str, Deployment]
    db: Database
    audit: AuditWriter
    keys: ApiKeyStore
    authenticator: Authenticator
    # What callers inherit from the directory, cached; its ``directory`` is the admin API's,
    # whose changes clear that cache.
    inheritance: Inheritance
    policy: PolicyService
    store: Store  # the shared state store: in-process, or Redis for replicas
    dlp: DlpService | None
    limiter: Limiter | None  # None: RATE_LIMIT_ENABLED=false
    transport: AiohttpTransport
    resolver: Resolver
    routing: Parts  # the router, and its breaker and health checks
    confirmations: Confirmations  # what waits for a person (the confirmations API reads it)
    expiries: ExpirySweeper  # audits the confirmations that expire unanswered
    drain: Drain  # the server's graceful shutdown, as streams see it
    grounding: Options  # how the grounding API checks an answer (guardrails.yaml's, or defaults)
    mfa: MfaCodes  # the TOTP codes confirmations that need MFA ask for
    metrics: Metrics | None  # None: METRICS_ENABLED=false
    pipeline: Pipeline  # the chat calls'
    actions: Pipeline  # the management actions'
    demo: EmulatorServer | None
    started_at: float
    alerts: Alerts | None = None  # None: no config/alerts.yaml (or no destination set)
    tracing: Tracing | None = None  # None: OTEL_ENABLED=false, or the otel extra is missing

    @classmethod
    async def start(cls, settings: Settings, config: GatewayConfig) -> AppState:
        transport = AiohttpTransport()  # opens nothing until its first request
        policy = PolicyService.from_settings(settings.policy, transport)  # a bad one stops start-up
        log.info("policy: revision %s", policy.revision)
        store = open_store(  # connects lazily
            settings.state.backend, settings.state.redis_dsn, timeout_s=state_timeout_s(settings)
        )
        log.info("state store: %s", settings.state.backend.value)
        dlp = (
            await DlpService.start(settings.dlp, settings.state, store)
            if settings.dlp.enabled
            else None
        )
        db = Database(settings.storage.sqlalchemy_url)
        if db.is_sqlite:
            await db.upgrade()
        else:
            await db.require_current()
        audit = _audit_writer(settings, db)
        audit.start()
        keys, authenticator, inheritance = _identity(settings, config, db, transport)
        deployments = dict(config.deployments)
        demo = None
        demo_model = settings.providers.demo_model
        if demo_model is AutoOnOff.ON or (demo_model is AutoOnOff.AUTO and not config.enabled()):
            demo = EmulatorServer(reply_prefix="Demo model (no provider is configured). You said: ")
            await demo.start()
            deployments[DEMO_MODEL] = _demo_deployment(demo.base_url)
        _log_models(deployments)
        guardrails = config.guardrails.guardrails
        grounding = options_of(guardrails)
        ground = Ground(guardrails.grounding, grounding) if guardrails.grounding.enabled else None
        checkpoints = Checkpoints(guardrails.hitl)
        confirmations = Confirmations(store.namespaced("hitl"), time.time)
        mfa = MfaCodes(
            db.sessions, resolve_vault_key(settings.dlp.vault_key, settings.dlp.data_dir),
            store.namespaced("mfa"),
        )  # fmt: skip
        confirm = None
        if checkpoints:
            confirm = Confirm(checkpoints, confirmations, settings.policy.environment, mfa)
        trail, metrics, alerts = _trail(settings, audit, config, transport, store, confirmations)
        routing = config.routing.routing
        resolver = Resolver(deployments, routing)
        routed = build_router(
            routing=routing, deployments=deployments, regional=config.regional,
            settings=settings.routing, store=store.namespaced("routing"),
            probe=partial(providers.probe, transport),
            on_breaker=breaker_listener(alerts) if alerts is not None else None,
        )  # fmt: skip
        recorders = list(trail)
        limiter = None
        if settings.limits.enabled:
            limiter = Limiter(
                config.limits, settings.limits, store.namespaced("limits"),
                timeout_s=state_timeout_s(settings), directory=inheritance.limits,
            )  # fmt: skip
            recorders.append(BudgetRecorder(limiter))
        pipeline = build_pipeline(
            recorders=recorders, authenticator=authenticator, policy=policy,
            environment=settings.policy.environment, limiter=limiter, dlp=dlp,
            resolver=resolver, router=routed.router, routing=settings.routing,
            cache=StaleCache(store.namespaced("stale"), routing.stale_if_error)
            if routing.stale_if_error.enabled
            else None,
            confirm=confirm,
            ground=ground,
            transport=transport,
            tracing=start_tracing(settings.tracing),  # None when off, or without the extra
            inheritance=inheritance,
        )  # fmt: skip
        actions = build_action_pipeline(
            recorders=recorders, authenticator=authenticator, policy=policy,
            environment=settings.policy.environment, tracing=pipeline.tracing,
            inheritance=inheritance,
        )  # fmt: skip
        policy.start(settings.policy.reload_seconds)
        expiries = ExpirySweeper(confirmations, trail, settings.hitl.expiry_sweep_s)
        if checkpoints:
            expiries.start()
        if routed.health is not None:
            routed.health.start()
        return cls(
            settings, config, deployments, db, audit, keys, authenticator, inheritance, policy,
            store, dlp,
            limiter, transport, resolver, routed, confirmations, expiries,
            Drain(settings.http.shutdown_grace_s), grounding, mfa, metrics, pipeline, actions,
            demo, time.time(), alerts, pipeline.tracing,
        )  # fmt: skip

    async def stop(self) -> None:
        await self.expiries.stop()
        if self.routing.health is not None:
            await self.routing.health.stop()
        await self.policy.aclose()
        await self.authenticator.aclose()
        if self.dlp is not None:
            await self.dlp.aclose()
        await self.store.aclose()
        if self.alerts is not None:
            await self.alerts.stop()  # what is queued goes out, through the transport
        await self.transport.close()
        await self.audit.close(self.settings.storage.audit_wait_s)
        if self.demo is not None:
            await self.demo.aclose()
        await self.db.dispose()
        if self.tracing is not None:  # the spans of the requests just drained go out
            await asyncio.to_thread(self.tracing.shutdown)

    def usable_models(self) -> list[Deployment]:
        """The models that are configured and not marked down by their health checks."""
        health = self.routing.health
        return [
            d
            for d in self.deployments.values()
            if d.enabled and (health is None or health.is_up(d.key))
        ]


def _identity(
    settings: Settings, config: GatewayConfig, db: Database, transport: AiohttpTransport
) -> tuple[ApiKeyStore, Authenticator, Inheritance]:
    """The API keys, the authenticator, and what callers inherit from the directory."""
    keys = ApiKeyStore(db.sessions, settings.auth.api_key_cache_seconds)
    oidc, introspection = identity_verifiers(settings.auth, config.identity, transport)
    authenticator = Authenticator(JWTVerifier(settings.auth), keys, oidc, introspection)
    inheritance = Inheritance(Directory(db.sessions), settings.auth.directory_cache_seconds)
    return keys, authenticator, inheritance


def _audit_writer(settings: Settings, db: Database) -> AuditWriter:
    storage = settings.storage
    spool = None
    if storage.audit_spool_max_mb > 0:
        spool = Spool(
            storage.spool_dir, max_bytes=storage.audit_spool_max_mb << 20,
            fsync=storage.audit_mode is AuditMode.STRICT, batch_max=storage.audit_batch_max,
        )  # fmt: skip
    log.info("audit: %s mode, spool %s", storage.audit_mode.value, spool.root if spool else "off")
    return AuditWriter(
        sink_for(db), batch_max=storage.audit_batch_max, wait_timeout_s=storage.audit_wait_s,
        mode=storage.audit_mode, spool=spool, spool_after_s=storage.audit_spool_after_s,
        queue_max=storage.audit_queue_max,
    )  # fmt: skip


def _trail(
    settings: Settings, audit: AuditWriter, config: GatewayConfig, transport: AiohttpTransport,
    store: Store, confirmations: Confirmations,
) -> tuple[list[Recorder], Metrics | None, Alerts | None]:  # fmt: skip
    """The recorders every event is written to: the access log, the metrics (which count
    what the access log logs, before the audit row is committed), the alerts (which only
    queue: their webhooks are called by tasks of their own, started here; the replicas
    claim each alert in the store, so that what they all see is sent once) and the audit
    trail."""
    trail: list[Recorder] = [AccessLog()]
    metrics = None
    if settings.metrics.enabled:
        metrics = Metrics(tenant_label=settings.metrics.tenant_label)
        trail.append(MetricsRecorder(metrics))
    alerts = build_alerts(
        config.alerts, transport, confirmations, store.namespaced("alerts"),
        store_timeout_s=state_timeout_s(settings),
    )  # fmt: skip
    if alerts is not None:
        alerts.start()
        trail.append(AlertRecorder(alerts))
        if audit.spool is not None:
            alerts.watch("audit_spool", "spool", audit.spool_filling, SPOOL_FILLING)
    storage = settings.storage
    trail.append(AuditRecorder(audit, storage.audit_content, storage.audit_content_max_chars))
    return trail, metrics, alerts


def state_timeout_s(settings: Settings) -> float:
    return settings.state.timeout_ms / 1000


def _demo_deployment(base_url: str) -> Deployment:
    return Deployment(
        name=DEMO_MODEL, provider=Provider.OPENAI_COMPATIBLE, base_url=f"{base_url}/v1",
        upstream_model=DEMO_MODEL, api_key="demo", timeout_s=30, max_concurrent=100, weight=1,
        default_max_tokens=1024, price=None, demo=True,
    )  # fmt: skip


def _log_models(deployments: dict[str, Deployment]) -> None:
    for d in deployments.values():
        if d.demo:
            log.warning(
                "serving model 'demo' from the built-in emulator at %s: no provider is configured "
                "(set CLAUDE_API_KEY, OPENAI_API_KEY or LOCAL_MODEL_URL)", d.base_url,
            )  # fmt: skip
        elif d.enabled:
            log.info("model %s: %s at %s", d.name, d.provider.value, d.base_url)
        else:
            log.warning("model %s is disabled: %s", d.name, d.disabled_reason)
