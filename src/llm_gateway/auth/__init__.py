"""Authentication: turn the caller's credential into a Principal, or refuse with 401.

A credential arrives as ``Authorization: Bearer <credential>`` or, as the
Anthropic SDK sends it, ``x-api-key: <credential>``, on every front door.
Keys issued by the gateway start with ``lsg_``; anything else is a JWT.
A request carries exactly one credential: two ``Authorization`` headers, two
``x-api-key`` headers, or one of each are refused as ambiguous (400) rather
than letting the first one win, which would let a forged header ride along
beside a valid one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llm_gateway.auth.api_keys import ApiKeyStore, is_api_key
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.auth.principal import Principal
from llm_gateway.errors import AuthenticationFailed, InvalidRequest

__all__ = ["Authenticator", "Credentials", "Principal", "credential_from"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """Every value of the request's credential headers, as sent (a header may repeat)."""

    authorization: tuple[str, ...] = ()
    x_api_key: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, raw: Iterable[tuple[bytes, bytes]]) -> Credentials:
        """From a request's raw headers (ASGI's lower-cased name and value pairs)."""
        authorization: list[str] = []
        x_api_key: list[str] = []
        for name, value in raw:
            if name == b"authorization" and value.strip():
                authorization.append(value.decode("latin-1"))
            elif name == b"x-api-key" and value.strip():
                x_api_key.append(value.decode("latin-1"))
        return cls(tuple(authorization), tuple(x_api_key))

    @classmethod
    def bearer(cls, credential: str) -> Credentials:
        return cls(authorization=(f"Bearer {credential}",))


def credential_from(credentials: Credentials) -> str:
    """The one credential the request carries; 400 when it carries more than one."""
    if len(credentials.authorization) + len(credentials.x_api_key) > 1:
        raise InvalidRequest(
            "the request carries more than one credential (Authorization and x-api-key "
            "headers together count as two); send exactly one",
            code="ambiguous_credentials",
        )
    if credentials.authorization:
        scheme, _, value = credentials.authorization[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed(
                "the Authorization header must be 'Bearer <token or API key>'",
                code="malformed_credentials",
            )
        return value.strip()
    if credentials.x_api_key:
        return credentials.x_api_key[0].strip()
    raise AuthenticationFailed(
        "no credentials: send 'Authorization: Bearer <token or API key>' or 'x-api-key'",
        code="missing_credentials",
    )


class Authenticator:
    def __init__(self, jwt: JWTVerifier, keys: ApiKeyStore) -> None:
        self.jwt = jwt
        self.keys = keys

    async def authenticate(self, credentials: Credentials) -> Principal:
        credential = credential_from(credentials)
        if is_api_key(credential):
            return await self.keys.verify(credential)
        return self.jwt.verify(credential)
