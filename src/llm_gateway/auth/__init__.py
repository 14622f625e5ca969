"""Authentication: turn the caller's credential into a Principal, or refuse with 401.

A credential arrives as ``Authorization: Bearer <credential>`` or, as the
Anthropic SDK sends it, ``x-api-key: <credential>``, on every front door.
Keys issued by the gateway start with ``lsg_``; anything else is a JWT.
"""

from __future__ import annotations

from llm_gateway.auth.api_keys import ApiKeyStore, is_api_key
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.auth.principal import Principal
from llm_gateway.errors import AuthenticationFailed

__all__ = ["Authenticator", "Principal", "credential_from"]


def credential_from(authorization: str | None, x_api_key: str | None) -> str:
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed(
                "the Authorization header must be 'Bearer <token or API key>'",
                code="malformed_credentials",
            )
        return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    raise AuthenticationFailed(
        "no credentials: send 'Authorization: Bearer <token or API key>' or 'x-api-key'",
        code="missing_credentials",
    )


class Authenticator:
    def __init__(self, jwt: JWTVerifier, keys: ApiKeyStore) -> None:
        self.jwt = jwt
        self.keys = keys

    async def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal:
        credential = credential_from(authorization, x_api_key)
        if is_api_key(credential):
            return await self.keys.verify(credential)
        return self.jwt.verify(credential)
