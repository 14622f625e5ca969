"""A small OpenID Connect provider for the tests, on 127.0.0.1 in a thread of its own.

It serves discovery (``/.well-known/openid-configuration``), a JWKS (``/jwks``)
of RS256 and ES256 keys that can be rotated, and an RFC 7662 introspection
endpoint (``/introspect``), counting each. ``mode`` switches it: ``up``,
``down`` (every connection is dropped: the IdP is unreachable) or ``hang``
(requests are accepted and never answered). ``discovery_body`` replaces the
discovery document (not JSON, another issuer, ...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from typing import Any, Literal

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

Mode = Literal["up", "down", "hang"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class LocalIdp:
    def __init__(self, client_id: str = "gateway", client_secret: str = "idp-secret") -> None:  # noqa: S107 (a test IdP's)
        self.client_id = client_id
        self.client_secret = client_secret
        self.mode: Mode = "up"
        self.keys: dict[str, tuple[str, PrivateKey]] = {}  # kid -> (alg, private key)
        self.cache_control: str | None = None
        self.discovery_body: bytes | None = None
        self.opaque: dict[str, dict[str, Any]] = {}  # token -> introspection answer
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.introspections = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = threading.Event()
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- keys and tokens -----------------------------------------------------

    def add_key(self, kid: str, alg: str = "RS256") -> str:
        key: PrivateKey
        if alg.startswith("ES"):
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = (alg, key)
        return kid

    def rotate(self, new_kid: str, alg: str = "RS256", *, drop: tuple[str, ...] = ()) -> str:
        for kid in drop:
            self.keys.pop(kid, None)
        return self.add_key(new_kid, alg)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, (alg, key) in self.keys.items():
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": keys}

    def token(
        self,
        audience: str = "llm-gateway",
        kid: str = "rsa-1",
        *,
        key: object = None,
        alg: str | None = None,
        **claims: Any,
    ) -> str:
        key_alg, private = self.keys.get(kid, ("RS256", None))
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer, "aud": audience, "sub": "user-1", "iat": now, "exp": now + 600,
        }  # fmt: skip
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload, key if key is not None else private, algorithm=alg or key_alg,  # type: ignore[arg-type]
            headers={"kid": kid},
        )  # fmt: skip

    def opaque_token(self, **answer: Any) -> str:
        token = secrets.token_urlsafe(24)
        now = int(time.time())
        self.opaque[token] = {
            "active": True, "sub": "opaque-user", "iat": now, "exp": now + 600, **answer,
        }  # fmt: skip
        return token

    # --- the server ------------------------------------------------------------

    async def _gate(self, request: web.Request) -> None:
        if self.mode == "down":
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError
        if self.mode == "hang":
            await asyncio.sleep(3600)

    async def _discovery(self, request: web.Request) -> web.StreamResponse:
        await self._gate(request)
        self.discovery_fetches += 1
        if self.discovery_body is not None:
            return web.Response(body=self.discovery_body, content_type="application/json")
        return web.json_response(
            {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks",
             "introspection_endpoint": f"{self.issuer}/introspect"}
        )  # fmt: skip

    async def _jwks(self, request: web.Request) -> web.StreamResponse:
        await self._gate(request)
        self.jwks_fetches += 1
        headers = {"cache-control": self.cache_control} if self.cache_control else None
        return web.json_response(self.jwks(), headers=headers)

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        self.jwks_fetches += 1
        raise web.HTTPFound(f"{self.issuer}/jwks")  # followed, it would serve the keys

    async def _introspect(self, request: web.Request) -> web.StreamResponse:
        await self._gate(request)
        self.introspections += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        token = form.get("token")
        answer = self.opaque.get(token) if isinstance(token, str) else None
        return web.json_response(answer or {"active": False})

    def start(self) -> LocalIdp:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            app = web.Application()
            app.router.add_get("/.well-known/openid-configuration", self._discovery)
            app.router.add_get("/jwks", self._jwks)
            app.router.add_post("/introspect", self._introspect)
            app.router.add_get("/moved", self._moved)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._runner = runner
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(runner.cleanup())
            loop.close()
            self._stopped.set()

        self._thread = threading.Thread(target=run, name="local-idp", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        self.mode = "up"
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
