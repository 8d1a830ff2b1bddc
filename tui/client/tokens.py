"""The login session: an access token kept fresh and a single-use refresh token kept safe.

The pair is kept sealed in the profile's local store (``SealedTokens``). The refresh token is
spent by every refresh, and presenting a spent one ends the whole session
(docs/auth.md, "Refresh tokens and sessions"). So refreshes are serialised behind one lock,
and the new pair is persisted *before* it is used: a crash after the server answered can never
leave the profile holding only the spent token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tui.client.errors import ApiError, NotLoggedIn

#: Refresh once this fraction of the access token's lifetime has passed.
REFRESH_AT_FRACTION = 0.75


@dataclass(frozen=True, slots=True)
class Tokens:
    user: str
    access: str
    refresh: str
    expires_at: float
    """Unix time the access token expires (from ``expires_in`` at the moment it was issued)."""
    issued_at: float

    @classmethod
    def from_login(cls, body: dict[str, Any], now: float | None = None) -> Tokens:
        now = time.time() if now is None else now
        return cls(
            user=str(body["user"]),
            access=str(body["token"]),
            refresh=str(body["refresh_token"]),
            expires_at=now + float(body["expires_in"]),
            issued_at=now,
        )

    def refresh_due(self, now: float, fraction: float = REFRESH_AT_FRACTION) -> float:
        """Unix time at which this pair should be refreshed."""
        return self.issued_at + (self.expires_at - self.issued_at) * fraction

    def __repr__(self) -> str:  # never print a token, even in a traceback
        return f"Tokens(user={self.user!r}, expires_at={self.expires_at:.0f})"


class TokenStore(Protocol):
    """Where a profile keeps its tokens between runs."""

    def load(self) -> Tokens | None: ...
    def save(self, tokens: Tokens) -> None: ...
    def clear(self) -> None: ...


class SealedTokens:
    """Tokens inside the profile's local store, sealed under the passphrase like every secret."""

    KIND = "client"
    NAME = "tokens"

    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def load(self) -> Tokens | None:
        data = self._store.get_json(self.KIND, self.NAME)
        return None if data is None else Tokens(**data)

    def save(self, tokens: Tokens) -> None:
        self._store.put_json(self.KIND, self.NAME, asdict(tokens))

    def clear(self) -> None:
        self._store.delete_secret(self.KIND, self.NAME)


class SecretStore(Protocol):
    """The part of ``tui.crypto.LocalStore`` that keeps sealed values."""

    def put_json(self, kind: str, name: str, value: Any) -> None: ...
    def get_json(self, kind: str, name: str) -> Any: ...
    def delete_secret(self, kind: str, name: str) -> None: ...


Refresher = Callable[[str], Awaitable[dict[str, Any]]]
"""Spends a refresh token at ``POST /auth/refresh``; returns the login-shaped answer."""


class TokenKeeper:
    """Hands out a valid access token, refreshing ahead of expiry and on demand."""

    def __init__(
        self, store: TokenStore, refresher: Refresher, *, fraction: float = REFRESH_AT_FRACTION
    ) -> None:
        self._store = store
        self._refresher = refresher
        self._fraction = fraction
        self._tokens = store.load()
        self._lock = asyncio.Lock()

    @property
    def tokens(self) -> Tokens | None:
        return self._tokens

    @property
    def user(self) -> str:
        if self._tokens is None:
            raise NotLoggedIn()
        return self._tokens.user

    def adopt(self, login_body: dict[str, Any]) -> Tokens:
        """Take the answer of a login: persist it, then use it."""
        tokens = Tokens.from_login(login_body)
        self._store.save(tokens)
        self._tokens = tokens
        return tokens

    def forget(self) -> None:
        self._store.clear()
        self._tokens = None

    async def access(self) -> str:
        """A token good for now; refreshed first when it is due."""
        tokens = self._tokens
        if tokens is None:
            raise NotLoggedIn()
        if time.time() >= tokens.refresh_due(time.time(), self._fraction):
            tokens = await self.refresh(tokens.access)
        return tokens.access

    def seconds_until_refresh(self) -> float | None:
        if self._tokens is None:
            return None
        return max(0.0, self._tokens.refresh_due(time.time(), self._fraction) - time.time())

    async def refresh(self, stale_access: str | None = None) -> Tokens:
        """Spend the refresh token once. ``stale_access`` is the token the caller found bad:
        when another task already replaced it, that newer pair is returned unspent."""
        async with self._lock:
            tokens = self._tokens
            if tokens is None:
                raise NotLoggedIn()
            if stale_access is not None and tokens.access != stale_access:
                return tokens
            try:
                body = await self._refresher(tokens.refresh)
            except ApiError as exc:
                if exc.session_over:
                    self.forget()
                    raise NotLoggedIn("your session has ended: run `sealchat login` again") from exc
                raise
            return self.adopt(body)
