"""Disappearing messages: the archive forgets their ciphertext once their time has passed.

Every client hides an expired message itself (the timer is inside the encrypted content);
this sweep makes the server forget it too, within ``chat.expiry_sweep_seconds``. The record
stays as an ``expired`` tombstone so a room's seq has no holes and is never handed out again.
Several archivers may sweep at once: blanking is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from backend.stores.documents.port import DocumentStore

log = logging.getLogger("sealchat.archiver.expiry")


class ExpirySweeper:
    def __init__(self, documents: DocumentStore, interval: float) -> None:
        self._documents = documents
        self._interval = interval
        self.expired = 0

    async def sweep(self) -> int:
        n = await self._documents.expire_messages(datetime.now(UTC))
        self.expired += n
        if n:
            log.info("expired messages blanked", extra={"count": n})
        return n

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                # The store is down: the next round tries again; nothing is lost by waiting.
                log.warning("expiry sweep failed; retrying", exc_info=True)
            await asyncio.sleep(self._interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ExpirySweeper]:
        task = asyncio.create_task(self._run(), name="archiver-expiry")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
