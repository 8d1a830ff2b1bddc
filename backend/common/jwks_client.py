"""The auth service's public keys, fetched over HTTP by services that run without it.

Keys are read at start, again every ``refresh_every_seconds`` in the background, and when a
token names a ``kid`` we do not know (a rotation), at most once per ``min_refresh_seconds`` so
a flood of forged kids cannot hammer auth. The background read is what makes a rotation safe
under such a flood: the forged kids keep the on-demand read rate-limited, so without it a node
could refuse the new key's tokens for ``min_refresh_seconds`` after it starts signing. With
it, a key published for longer than ``refresh_every_seconds`` is known everywhere before the
operator moves it first (docs/auth.md, "Keys and rotation").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp

from backend.common.tokens import keys_by_kid

log = logging.getLogger("sealchat.jwks")


class JwksUnavailable(Exception):
    """The key set could not be read; the message says from where."""


class RemoteJwks:
    def __init__(
        self,
        url: str,
        *,
        min_refresh_seconds: float = 30.0,
        refresh_every_seconds: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._keys: dict[str, dict[str, str]] = {}
        self._min_refresh = min_refresh_seconds
        self._every = refresh_every_seconds
        self._poller: asyncio.Task[None] | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    def keys(self) -> dict[str, dict[str, str]]:
        return self._keys

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._last_fetch = time.monotonic()
        try:
            async with self._session.get(self.url) as r:
                r.raise_for_status()
                keys = keys_by_kid(await r.json())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JwksUnavailable(f"cannot read the token keys from {self.url}: {exc}") from None
        if not keys:
            raise JwksUnavailable(f"{self.url} lists no Ed25519 signing key")
        self._keys = keys

    async def start(self, *, attempts: int = 10, delay: float = 1.0) -> None:
        """Read the keys, retrying while auth starts up; raise ``JwksUnavailable`` at last."""
        for attempt in range(1, attempts + 1):
            try:
                await self._fetch()
                if self._poller is None:
                    self._poller = asyncio.create_task(self._poll(), name="jwks-poll")
                return
            except JwksUnavailable:
                if attempt == attempts:
                    raise
                log.warning("token keys not readable yet, retrying", extra={"attempt": attempt})
                await asyncio.sleep(delay)

    async def _poll(self) -> None:
        """Re-read the keys on a timer, so keys published ahead of a rotation are known."""
        while True:
            await asyncio.sleep(self._every)
            async with self._lock:
                try:
                    await self._fetch()
                except JwksUnavailable as exc:  # keep the keys we have; try again next time
                    log.warning("token key refresh failed", extra={"error": str(exc)})

    async def refresh(self, kid: str) -> bool:
        """Re-read the keys if ``kid`` is unknown and we have not just done so."""
        async with self._lock:
            if kid in self._keys or time.monotonic() - self._last_fetch < self._min_refresh:
                return kid in self._keys
            try:
                await self._fetch()
            except JwksUnavailable as exc:
                log.warning("token key refresh failed", extra={"error": str(exc)})
            return kid in self._keys

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._session is not None:
            await self._session.close()
