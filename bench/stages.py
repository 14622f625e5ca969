"""The per-request cost of each pipeline stage in isolation, measured in-process.

Each figure is the median (and 99th percentile) over many calls of the stage
alone, with the stages after it replaced by a function that returns at once.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import targets, upstream
from bench.dlp_speed import dlp_stage_costs
from llm_gateway.api import openai as openai_door
from llm_gateway.audit.records import audit_row
from llm_gateway.audit.sinks import sink_for
from llm_gateway.audit.writer import AuditWriter
from llm_gateway.auth import Credentials
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.auth.oidc import OidcVerifier
from llm_gateway.chat import ChatResponse
from llm_gateway.config import Deployment, Provider
from llm_gateway.config.guardrails import Grounding, GuardrailsFile
from llm_gateway.config.identity import IssuerEntry
from llm_gateway.config.limits import LimitsFile
from llm_gateway.config.loader import load_yaml, validate
from llm_gateway.dlp.service import DlpService
from llm_gateway.errors import UpstreamUnreachable
from llm_gateway.grounding import Options
from llm_gateway.hitl import Checkpoints
from llm_gateway.hitl.confirmations import Confirmations
from llm_gateway.pipeline.authorize import Authorize
from llm_gateway.pipeline.confirm import Confirm
from llm_gateway.pipeline.context import (
    Attempt,
    ChatCall,
    Outcome,
    RequestContext,
    new_request_id,
)
from llm_gateway.pipeline.ground import Ground
from llm_gateway.pipeline.inspect import Inspect
from llm_gateway.pipeline.limit import Limit
from llm_gateway.pipeline.record import request_record
from llm_gateway.pipeline.route import Route
from llm_gateway.policy import PolicyService
from llm_gateway.providers.openai import OpenAIAdapter
from llm_gateway.ratelimit import Limiter
from llm_gateway.routing import Resolution, Resolver, Router, Tracker
from llm_gateway.routing.breaker import Breaker, BreakerRules
from llm_gateway.settings import LimitSettings, RoutingSettings, load_settings
from llm_gateway.state import MemoryStore, Store, StoreError
from llm_gateway.state.redis import RedisStore
from llm_gateway.storage import Database
from llm_gateway.transport import UpstreamRequest, UpstreamResponse

Timing = tuple[float, float]  # median and p99, in microseconds


def _time(fn: Callable[[], object], n: int = 20_000) -> Timing:
    for _ in range(500):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


async def _time_async(fn: Callable[[], Awaitable[object]], n: int = 20_000) -> Timing:
    for _ in range(500):
        await fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def _body() -> bytes:
    prompt = (
        "Summarise the quarterly report for the operations team in three short bullet points. " * 12
    )[:1000]
    return (
        b'{"model": "bench", "messages": [{"role": "system", "content": "You are concise."}, '
        b'{"role": "user", "content": "' + prompt.encode() + b'"}]}'
    )


DEPLOYMENT = Deployment(
    name="bench",
    provider=Provider.OPENAI_COMPATIBLE,
    base_url="http://127.0.0.1:1/v1",
    upstream_model="bench",
    api_key="k",
    timeout_s=10,
    max_concurrent=100,
    weight=1,
    default_max_tokens=1024,
    price=None,
)


def _context() -> RequestContext:
    async def read() -> bytes:
        return _body()

    return RequestContext(
        endpoint="openai",
        credentials=Credentials(),
        read_body=read,
        payload=ChatCall(openai_door.parse_request),
    )


async def _measure(tmp: Path) -> dict[str, Timing]:
    settings = load_settings(
        {"JWT_SECRET": targets.JWT_SECRET, "DATA_DIR": str(tmp)}, env_file=None
    )
    verifier = JWTVerifier(settings.auth)
    token = targets.bearer().split(" ", 1)[1]
    body = _body()
    chat = openai_door.parse_request(body)
    adapter = OpenAIAdapter()
    answer = upstream.completion_body()
    response = adapter.parse_response(DEPLOYMENT, answer)
    ctx = _context()
    ctx.chat = chat
    resolver = Resolver({"bench": DEPLOYMENT, "gpt-4": replace(DEPLOYMENT, name="gpt-4")})
    ctx.call.resolution = resolver.resolve("bench")
    ctx.attempts.append(Attempt(DEPLOYMENT))

    async def done(_ctx: RequestContext) -> Outcome:
        return response

    ctx.principal = verifier.verify(token)
    results = {
        "authenticate (JWT HS256, first use)": _time(lambda: verifier._verify(token)),
        "authenticate (JWT HS256, cached)": _time(lambda: verifier.verify(token)),
        **await _oidc(),
        "parse OpenAI request (1 KB)": _time(lambda: openai_door.parse_request(body)),
        "translate to provider request": _time(lambda: adapter.build_request(DEPLOYMENT, chat)),
        "parse provider answer": _time(lambda: adapter.parse_response(DEPLOYMENT, answer)),
        "encode OpenAI answer": _time(lambda: openai_door.encode_response(ctx, response)),
        **await _policy(ctx, done, resolver),
        **await _limit(ctx, done),
        **await _inspect(ctx, done, tmp),
        **await _route(ctx, response),
        **await _confirm(ctx, response),
        **await _ground(ctx, response),
        "build request record and audit row": _time(lambda: audit_row(request_record(ctx))),
    }
    db = Database(f"sqlite+aiosqlite:///{tmp}/stages.db")
    await db.upgrade()
    writer = AuditWriter(sink_for(db))
    writer.start()
    counter = iter(range(10**9))

    def row() -> dict[str, object]:
        r = audit_row(request_record(ctx))
        r["request_id"] = f"bench-{next(counter)}"
        return r

    results["audit write, one at a time (SQLite)"] = await _time_async(
        lambda: writer.write(row()), 2000
    )
    start = time.perf_counter_ns()
    await asyncio.gather(*(writer.write(row()) for _ in range(5000)))
    per_row = (time.perf_counter_ns() - start) / 1000 / 5000
    results["audit write, 5000 concurrent (SQLite, per row)"] = (per_row, per_row)
    await writer.close()
    await db.dispose()
    return results


class _JwksResponse:
    """An IdP's JWKS answer, served from memory: the figures are verification, not HTTP."""

    def __init__(self, body: bytes) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {}
        self.body = body

    async def read(self) -> bytes:
        return self.body

    async def lines(self) -> AsyncIterator[bytes]:
        yield self.body

    def close(self) -> None:
        pass


class _Jwks:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        return _JwksResponse(self.body)

    async def close(self) -> None:
        pass


async def _oidc() -> dict[str, Timing]:
    """An RS256 token of a trusted OIDC issuer, its JWKS already fetched (first use of the
    token: header, key by kid, RSA signature, claims, mapping) and then cached."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()
    issuer = "https://idp.bench"
    entry = IssuerEntry(issuer=issuer, audience="gateway", jwks_url=f"{issuer}/jwks")
    oidc = OidcVerifier([entry], _Jwks(body))
    now = int(time.time())
    claims = {"iss": issuer, "aud": "gateway", "sub": "alice", "tier": "premium",
              "iat": now, "exp": now + 3600}  # fmt: skip
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    await oidc.verify(token)  # fetches the keys once

    async def first_use() -> object:
        oidc._verified.clear()
        return await oidc.verify(token)

    return {
        "authenticate (OIDC RS256 via JWKS, first use)": await _time_async(first_use, 5000),
        "authenticate (OIDC RS256 via JWKS, cached)": await _time_async(lambda: oidc.verify(token)),
    }


async def _route(ctx: RequestContext, response: ChatResponse) -> dict[str, Timing]:
    """The route stage: one model, and a three-model chain whose first two fail at once."""
    models = [replace(DEPLOYMENT, name=n) for n in ("first", "second", "third")]
    failing = {"first", "second"}

    async def call(ctx: RequestContext) -> Outcome:
        assert ctx.deployment is not None
        if ctx.deployment.name in failing:
            raise UpstreamUnreachable("cannot connect to the provider")
        return response

    breaker = Breaker(MemoryStore(), BreakerRules(wait_duration_s=0.001))
    results = {}
    for name, router, resolution in (
        ("route (one model)", Router(), Resolution("bench", (DEPLOYMENT,))),
        ("route (one model, circuit breaker on the in-process store)",
         Router(tracker=Tracker(breaker=breaker), breaker=breaker),
         Resolution("bench", (DEPLOYMENT,))),
        ("route (a three-model chain, the first two failing fast)", Router(),
         Resolution("chain", tuple(models), "chain")),
    ):  # fmt: skip
        ctx.call.resolution = resolution
        route = Route(router, RoutingSettings())

        async def routed(route: Route = route) -> Outcome:
            ctx.attempts.clear()  # the attempts of one request, as in service
            return await route(ctx, call)

        results[name] = await _time_async(routed)
    ctx.call.resolution = Resolution("bench", (DEPLOYMENT,))
    ctx.attempts[:] = [Attempt(DEPLOYMENT)]
    return results


async def _confirm(ctx: RequestContext, response: ChatResponse) -> dict[str, Timing]:
    """The confirmation checkpoint, the specification's rules, on a request that matches none."""
    spec = targets.REPO / "tests" / "config" / "spec_guardrails.yaml"
    hitl = validate(GuardrailsFile, load_yaml(spec)).guardrails.hitl
    stage = Confirm(Checkpoints(hitl), Confirmations(MemoryStore(), time.time), "production")

    async def answered(_ctx: RequestContext) -> Outcome:
        return response

    assert ctx.principal is not None
    return {
        "confirm (the specification's rules, a request that matches none)": await _time_async(
            partial(stage, ctx, answered)
        )
    }


async def _ground(ctx: RequestContext, response: ChatResponse) -> dict[str, Timing]:
    """The grounding stage on a request without tool results (every call pays this);
    the checker itself is bench/grounding_speed.py's."""
    stage = Ground(Grounding(enabled=True), Options())

    async def answered(_ctx: RequestContext) -> Outcome:
        return response

    return {
        "ground (a request without tool results)": await _time_async(partial(stage, ctx, answered))
    }


async def _policy(
    ctx: RequestContext,
    done: Callable[[RequestContext], Awaitable[Outcome]],
    resolver: Resolver,
) -> dict[str, Timing]:
    """The authorize stage (input document, decision, checks) on the embedded engine."""
    results = {}
    for name, directory, path in (
        ("specification's policy, v0", targets.BENCH_POLICIES / "spec", "/v1/data/llm/authz/allow"),
        ("shipped policy, object decision", targets.REPO / "policies",
         "/v1/data/llm/authz/decision"),
    ):  # fmt: skip
        settings = load_settings(
            {"POLICY_DIR": str(directory), "OPA_POLICY_PATH": path}, env_file=None
        )
        policy = PolicyService.from_settings(settings.policy)
        stage = Authorize(policy, "bench", resolver)
        assert ctx.chat is not None
        ctx.chat.model = "gpt-4" if "spec" in name else "bench"  # both allowed (enterprise)
        results[f"authorize ({name})"] = await _time_async(partial(stage, ctx, done))
        await policy.aclose()
    assert ctx.chat is not None
    ctx.chat.model = "bench"
    return results


async def _limit(
    ctx: RequestContext, done: Callable[[RequestContext], Awaitable[Outcome]]
) -> dict[str, Timing]:
    """The limit stage (user rate and token budget, tenant rate) and its settlement.

    Each call is a new request (a new entry in the sliding logs, a reservation
    on the budget), as in service; on Redis the figure includes the round trip.
    """
    limits = LimitsFile.model_validate(
        {"tiers": {"enterprise": {"requests_per_minute": 10**8, "tokens_per_month": 10**12}}}
    )
    settings = LimitSettings(per_tenant=10**8)
    assert ctx.principal is not None
    ctx.principal = replace(ctx.principal, tenant="bench")
    stores: list[tuple[str, Store]] = [("in-process", MemoryStore())]
    redis_store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix="llmgw-bench:")
    try:
        await redis_store.ping()
        stores.append(("Redis", redis_store))
    except StoreError:
        print("stages: Redis is not reachable at 127.0.0.1:6379; its limit figures are left out")
    results = {}
    for name, store in stores:
        limiter = Limiter(limits, settings, store, timeout_s=1.0)
        stage = Limit(limiter)

        async def admit(stage: Limit = stage) -> Outcome:
            ctx.request_id = new_request_id()
            return await stage(ctx, done)

        async def settle(stage: Limit = stage, limiter: Limiter = limiter) -> None:
            ctx.request_id = new_request_id()
            await stage(ctx, done)
            await limiter.settle(ctx.request_id, 300, 0.0)

        results[f"limit ({name} store)"] = await _time_async(admit, 5000)
        admit_and_settle = await _time_async(settle, 5000)
        results[f"limit and budget settlement ({name} store)"] = admit_and_settle
    await redis_store.aclose()
    ctx.limits = None
    return results


async def _inspect(
    ctx: RequestContext, done: Callable[[RequestContext], Awaitable[Outcome]], tmp: Path
) -> dict[str, Timing]:
    """The DLP stage on the request (every rule, no NER) and on the 20-word answer."""
    settings = load_settings({"DLP_NER": "off", "DATA_DIR": str(tmp)}, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    stage = Inspect(dlp)
    ctx.decision = None
    result = {"inspect (DLP rules on the 1 KB prompt and the answer)": await _time_async(
        lambda: stage(ctx, done), 5000
    )}  # fmt: skip
    await dlp.aclose()
    return result


def report() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(_measure(Path(tmp)))
    lines = ["| stage | median µs | p99 µs |", "|---|---:|---:|"]
    lines += [f"| {name} | {median:.1f} | {p99:.1f} |" for name, (median, p99) in results.items()]
    lines += ["", "| DLP detector | figure |", "|---|---:|"]
    lines += [f"| {name} | {value:,.1f} |" for name, value in dlp_stage_costs()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
