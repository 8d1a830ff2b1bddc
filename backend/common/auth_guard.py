"""Who is calling: bearer token → verified claims, checked against the deny-list.

Shared by every service. Logout (auth) writes the deny-list; here it is only read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from backend.common.errors import ApiError
from backend.common.tokens import (
    AccessClaims,
    TokenError,
    TokenExpired,
    TokenVerifier,
    UnknownKey,
)
from backend.protocol.errors import ErrorCode
from backend.stores.ephemeral.port import KeyValue

_PRINCIPAL: web.RequestKey[AccessClaims] = web.RequestKey("principal", AccessClaims)
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


#: Doorbell channel on which auth announces ended sessions (payload: the session id), so that
#: every chat node closes the sockets of that session at once.
SESSION_ENDED_CHANNEL = "sessions.ended"


def deny_jti_key(jti: str) -> str:
    return f"deny:jti:{jti}"


def deny_session_key(sid: str) -> str:
    return f"deny:sid:{sid}"


class Guard:
    def __init__(
        self,
        verifier: TokenVerifier,
        kv: KeyValue,
        refresh_keys: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.verifier = verifier
        self.kv = kv
        self._refresh_keys = refresh_keys

    def _verify(self, token: str) -> AccessClaims:
        return self.verifier.verify(token)

    async def _verify_refreshing(self, token: str) -> AccessClaims:
        try:
            return self._verify(token)
        except UnknownKey:
            # A key rotated in after we read the key set: re-read it (rate-limited) once.
            if self._refresh_keys is None or not await self._refresh_keys(
                self.verifier.unverified_kid(token)
            ):
                raise
            return self._verify(token)

    async def check(self, token: str) -> AccessClaims:
        """Verify a raw token (REST header or a WebSocket auth frame)."""
        try:
            claims = await self._verify_refreshing(token)
        except TokenExpired:
            raise ApiError(
                ErrorCode.TOKEN_EXPIRED, "access token expired: refresh it", headers=INVALID_TOKEN
            ) from None
        except TokenError as exc:
            raise ApiError(
                ErrorCode.UNAUTHORIZED, f"{exc}: log in again", headers=INVALID_TOKEN
            ) from None
        if await self.kv.has_flag(deny_jti_key(claims.jti)) or await self.kv.has_flag(
            deny_session_key(claims.sid)
        ):
            raise ApiError(
                ErrorCode.UNAUTHORIZED, "session has ended: log in again", headers=INVALID_TOKEN
            )
        return claims

    async def require(self, request: web.Request) -> AccessClaims:
        """The caller's claims, or 401. Cached on the request."""
        cached = request.get(_PRINCIPAL)
        if cached is not None:
            return cached
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                ErrorCode.UNAUTHORIZED,
                "missing bearer token: send Authorization: Bearer <token from /auth/login>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        claims = await self.check(token.strip())
        request[_PRINCIPAL] = claims
        return claims


def seconds_left(claims: AccessClaims) -> int:
    return max(1, claims.exp - int(time.time()) + 60)
