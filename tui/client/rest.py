"""HTTP calls to the auth and chat services, with the bearer token kept fresh.

One ``aiohttp.ClientSession`` per client. Every error becomes an ``ApiError`` carrying the
server's ``code``; a ``token_expired`` answer is refreshed and retried once, so callers never
see it. Bodies are never logged (they may hold a password or a token).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from backend.protocol.errors import ErrorCode
from tui.client.errors import ApiError, NotLoggedIn, ServerUnreachable
from tui.client.tokens import TokenKeeper

TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)


class Rest:
    def __init__(
        self, base_url: str, session: aiohttp.ClientSession, keeper: TokenKeeper | None
    ) -> None:
        self.base = base_url.rstrip("/")
        self.session = session
        self.keeper = keeper

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """JSON in, JSON out; ``path`` starts with ``/auth/`` or ``/chat/``."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        raw = await self._send(method, path, data, headers, auth=auth, params=params)
        return json.loads(raw) if raw else {}

    async def upload(self, path: str, payload: bytes, params: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/octet-stream"}
        raw = await self._send("POST", path, payload, headers, auth=True, params=params)
        return json.loads(raw)

    async def download(self, path: str) -> bytes:
        return await self._send("GET", path, None, {}, auth=True, params=None)

    async def _send(
        self,
        method: str,
        path: str,
        data: str | bytes | None,
        headers: dict[str, str],
        *,
        auth: bool,
        params: dict[str, Any] | None,
    ) -> bytes:
        for attempt in (1, 2):
            token = None
            if auth:
                if self.keeper is None:
                    raise NotLoggedIn()
                token = await self.keeper.access()
            hdrs = dict(headers)
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            try:
                async with self.session.request(
                    method,
                    self.base + path,
                    data=data,
                    headers=hdrs,
                    params=params,
                    timeout=TIMEOUT,
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 400:
                        return raw
                    err = _error_of(resp.status, raw)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise ServerUnreachable(
                    f"cannot reach {self.base} ({type(exc).__name__}): is the server running? "
                    "Check --server"
                ) from exc
            if auth and err.code == ErrorCode.TOKEN_EXPIRED and attempt == 1:
                assert token is not None and self.keeper is not None
                await self.keeper.refresh(token)
                continue
            raise err
        raise AssertionError("unreachable")


def _error_of(status: int, raw: bytes) -> ApiError:
    try:
        err = json.loads(raw)["error"]
        return ApiError(str(err["code"]), str(err["message"]), status)
    except (ValueError, KeyError, TypeError):
        return ApiError(ErrorCode.INTERNAL.value, f"the server answered HTTP {status}", status)
