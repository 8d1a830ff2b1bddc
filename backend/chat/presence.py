"""Presence across every chat node: a friend's first connection anywhere reads "online", the
last one closing anywhere "offline".

The gateway (``Registry``) reports a user's first and last connection on *this* node; here
those become claims in the presence book (Redis in cluster mode), and only a change of the
user's state across the whole cluster is announced: on the doorbell's ``presence`` channel,
naming the user's friends, so every node pushes it to the friends connected to it. A node
renews its claims while it runs; the claims of a node that died lapse after ``CLAIM_TTL``
(its users read "online" to friends who connected meanwhile until then; nobody is told
"offline" for them). Changes are handled one at a time in the order the gateway saw them, so
a quick disconnect and reconnect can never leave a user's last word "offline".

Presence is best effort, like the doorbell: when Redis is unreachable a change is logged and
lost (the next renewal re-makes this node's claims), never a reason to refuse a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from backend.common.tasks import stop_if_cancelled, stop_tasks
from backend.protocol.codec import encode
from backend.protocol.frames import Presence
from backend.stores.ephemeral.port import Doorbell, PresenceBook, Ring

if TYPE_CHECKING:
    from backend.chat.gateway.connection import Connection
    from backend.chat.gateway.registry import Registry
    from backend.chat.social import SocialService

log = logging.getLogger("sealchat.presence")

PRESENCE_CHANNEL = "presence"
CLAIM_TTL = 90
"""Seconds a claim lives without renewal: how long a dead node's users still read online."""
RENEW_EVERY = 30.0
DRAIN_ON_STOP = 5.0
"""Seconds a stopping node spends announcing the departures it still has queued."""


class ClusterPresence:
    """This node's part of presence: claims, announcements, snapshots and pushes."""

    def __init__(
        self,
        book: PresenceBook,
        doorbell: Doorbell,
        social: SocialService,
        gateway: Registry,
        *,
        node: str | None = None,
        ttl: int = CLAIM_TTL,
        renew_every: float = RENEW_EVERY,
    ) -> None:
        self.node = node or uuid.uuid4().hex
        self._book = book
        self._doorbell = doorbell
        self._social = social
        self._gateway = gateway
        self._ttl = ttl
        self._renew_every = renew_every
        self._changes: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._current: tuple[str, bool] | None = None
        """The change being recorded: done again when stopping interrupted it."""
        self.announced = 0
        self.failures = 0
        """Changes that could not be recorded or announced (a store was unreachable)."""

    # --- the gateway's hooks -------------------------------------------------------------
    async def changed(self, user: str, online: bool) -> None:
        """The gateway's presence hook: queued, so a connection never waits for Redis."""
        self._changes.put_nowait((user, online))

    async def snapshot(self, conn: Connection) -> None:
        """The gateway's signed-in hook: one ``presence`` frame per friend online now,
        wherever they are connected (changes follow as they happen)."""
        friends = await self._social.friends_of(conn.principal.user)
        here = {f for f in friends if self._gateway.online(f)}
        elsewhere = await self._book.online([f for f in friends if f not in here])
        for friend in friends:
            if friend in here or friend in elsewhere:
                conn.enqueue(encode(Presence(user=friend, online=True)))

    # --- the work ----------------------------------------------------------------------------
    async def _record(self) -> None:
        while True:
            self._current = await self._changes.get()
            await self._apply(*self._current)
            self._current = None
            stop_if_cancelled()

    async def _apply(self, user: str, online: bool) -> None:
        try:
            if online:
                changed = await self._book.arrive(user, self.node, self._ttl)
            else:
                changed = await self._book.depart(user, self.node)
            if not changed:
                return
            friends = await self._social.friends_of(user)
            if friends:
                payload = {"user": user, "online": online, "friends": friends}
                await self._doorbell.ring(PRESENCE_CHANNEL, json.dumps(payload).encode())
                self.announced += 1
        except Exception as exc:
            stop_if_cancelled()  # a store client turned our cancellation into its error
            # No traceback: a store error's text can quote the statement's parameters.
            self.failures += 1
            log.warning("presence change not announced", extra={"error": type(exc).__name__})

    async def _listen(self) -> None:
        """Push every announcement to the friends named in it who are connected here."""
        async for item in self._doorbell.subscribe(PRESENCE_CHANNEL):
            if not isinstance(item, Ring):
                continue  # missed changes are missed; a reconnecting client gets a snapshot
            try:
                data = json.loads(item.payload)
                frame = Presence(user=data["user"], online=data["online"])
                self._gateway.push([str(f) for f in data["friends"]], frame)
            except (ValueError, KeyError, TypeError):
                log.error("malformed presence ring ignored")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every)
            try:
                await self._book.renew(self._gateway.online_users(), self.node, self._ttl)
            except Exception as exc:
                log.warning("presence claims not renewed", extra={"error": type(exc).__name__})

    async def _drain(self) -> None:
        if self._current is not None:
            await self._apply(*self._current)
        while not self._changes.empty():
            await self._apply(*self._changes.get_nowait())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ClusterPresence]:
        tasks = [
            asyncio.create_task(self._record(), name="chat-presence-record"),
            asyncio.create_task(self._listen(), name="chat-presence-listen"),
            asyncio.create_task(self._renew(), name="chat-presence-renew"),
        ]
        try:
            yield self
        finally:
            await stop_tasks(tasks)
            # The gateway closed its connections before this: say goodbye for them.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_ON_STOP):
                    await self._drain()
