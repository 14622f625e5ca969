"""A small OpenID Connect provider for the tests, on 127.0.0.1 in a thread of its own.

It serves discovery (``/.well-known/openid-configuration``), a JWKS (``/jwks``)
of RS256 and ES256 keys that can be rotated, and an RFC 7662 introspection
endpoint (``/introspect``), counting each. ``mode`` switches it: ``up``,
``down`` (every connection is dropped: the IdP is unreachable) or ``hang``
(requests are accepted and never answered). ``discovery_body`` replaces the
discovery document (not JSON, another issuer, ...).

For logins it has an authorization endpoint (``/authorize``: it records the
request and sends the browser straight back to the ``redirect_uri`` with a
code, as if the person had logged in as ``login_claims`` say) and a token
endpoint (``/token``) for the ``authorization_code`` grant (the client's
credentials, the same ``redirect_uri``, the PKCE S256 verifier; a code works
once) and the ``client_credentials`` grant (for ``clients``, each with the
claims ``client_claims`` gives it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
from typing import Any, Literal
from urllib.parse import unquote_plus

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
        self.clients: dict[str, str] = {client_id: client_secret}  # id -> secret
        self.client_claims: dict[str, dict[str, Any]] = {}  # client_credentials tokens' claims
        self.api_audience = "llm-gateway"  # the client_credentials tokens' audience
        self.login_claims: dict[str, Any] = {"sub": "person-1"}  # who logs in at /authorize
        self.authorize_error: str | None = None  # set: /authorize answers with this error
        self.authorizations: list[dict[str, str]] = []  # each /authorize query
        self.codes: dict[str, dict[str, Any]] = {}  # code -> what it was issued for
        self.token_requests: list[dict[str, str]] = []  # each /token form (secrets left out)
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
             "introspection_endpoint": f"{self.issuer}/introspect",
             "authorization_endpoint": f"{self.issuer}/authorize",
             "token_endpoint": f"{self.issuer}/token",
             "end_session_endpoint": f"{self.issuer}/logout",
             "grant_types_supported": ["authorization_code", "client_credentials"],
             "code_challenge_methods_supported": ["S256"]}
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

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        await self._gate(request)
        query = dict(request.query)
        self.authorizations.append(query)
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") not in self.clients or not redirect:
            return web.json_response({"error": "invalid_client"}, status=400)
        state = query.get("state", "")
        if self.authorize_error is not None:
            raise web.HTTPFound(f"{redirect}?error={self.authorize_error}&state={state}")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "client_id": query["client_id"], "redirect_uri": redirect,
            "challenge": query.get("code_challenge"), "method": query.get("code_challenge_method"),
            "nonce": query.get("nonce"), "claims": dict(self.login_claims),
        }  # fmt: skip
        raise web.HTTPFound(f"{redirect}?code={code}&state={state}")

    def _client(self, request: web.Request, form: dict[str, str]) -> str | None:
        """The authenticated client's id (HTTP Basic, or client_secret_post), else None."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client, _, secret = base64.b64decode(value).decode().partition(":")
            client, secret = unquote_plus(client), unquote_plus(secret)
        else:
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
        known = self.clients.get(client)
        return client if known is not None and secrets.compare_digest(known, secret) else None

    async def _token(self, request: web.Request) -> web.StreamResponse:
        await self._gate(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        client = self._client(request, form)
        if client is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            claims = {"sub": client, **self.client_claims.get(client, {})}
            access = self.token(audience=self.api_audience, **claims)
            return web.json_response(
                {"access_token": access, "token_type": "Bearer", "expires_in": 600}
            )
        if grant != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        issued = self.codes.pop(form.get("code", ""), None)  # a code works once
        if issued is None or issued["client_id"] != client:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if form.get("redirect_uri") != issued["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if issued["method"] != "S256" or challenge != issued["challenge"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        id_token = self.token(audience=client, nonce=issued["nonce"], **issued["claims"])
        return web.json_response({
            "access_token": self.token(audience=self.api_audience, **issued["claims"]),
            "id_token": id_token, "token_type": "Bearer", "expires_in": 600,
        })  # fmt: skip

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
            app.router.add_get("/authorize", self._authorize)
            app.router.add_post("/token", self._token)
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
