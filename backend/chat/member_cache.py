"""Who is in which room, remembered between membership changes: the check before every send.

Every ``send`` (and history, typing and read) is checked against the room's members. Read
from the relational store, that check is a pooled round trip per message (the pool's ping,
the query, the reset), the largest cost of a send on a chat node. Here a room's members are
read once and kept until its membership changes, so the answer stays the store's:

- the node that commits a change drops the room at once (``RoomService`` calls ``changed``
  after the commit, before anyone is told) and rings ``MEMBERSHIP_CHANNEL``; every chat node
  drops the room when the ring arrives;
- the cache answers only while its doorbell subscription is live, and drops everything when
  the subscription (re)starts (``Resync``: rings may have been missed);
- an ended session (``sessions.ended``: sign-out, a deleted account) drops everything, so an
  account id taken again never inherits the rooms of the account that had it;
- a read that overlapped a change is used once and not kept, and a check that starts after
  a change never joins a read that began before it;
- an entry is read again after ``ttl`` seconds: the bound on how stale an answer can be if
  a ring is lost while the subscription still looks alive (Redis seen down only at
  reconnect). ``ttl`` 0 turns the cache off: every check reads the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

from backend.common.auth_guard import SESSION_ENDED_CHANNEL
from backend.stores.ephemeral.port import Doorbell, Resync, Ring

log = logging.getLogger("sealchat.chat.members")

MEMBERSHIP_CHANNEL = "membership"
"""Doorbell channel: the payload is the id of a room whose membership changed."""
MAX_ROOMS = 20_000
"""Rooms remembered at most; the least recently used go first."""

LoadMembers = Callable[[str], Awaitable[Collection[str]]]
CheckMember = Callable[[str, str], Awaitable[bool]]


class MemberCache:
    """Room → its members, invalidated by every membership change (module docstring)."""

    def __init__(
        self,
        load: LoadMembers,
        check: CheckMember,
        *,
        ttl: float,
        max_rooms: int = MAX_ROOMS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._check = check
        self._ttl = ttl
        self._max_rooms = max_rooms
        self._clock = clock
        self._rooms: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[frozenset[str]]] = {}
        self._generation = 0
        self._doorbell: Doorbell | None = None
        self.live = False
        """Whether membership rings are arriving (only then does the cache answer)."""
        self.hits = 0
        self.misses = 0
        self.ring_failures = 0

    async def is_member(self, room: str, user: str) -> bool:
        if not self.live or self._ttl <= 0:
            self.misses += 1
            return await self._check(room, user)
        entry = self._rooms.get(room)
        if entry is not None and self._clock() - entry[0] < self._ttl:
            self._rooms.move_to_end(room)
            self.hits += 1
            return user in entry[1]
        self.misses += 1
        return user in await self._members(room)

    async def _members(self, room: str) -> frozenset[str]:
        loading = self._loading.get(room)
        if loading is None:
            loading = asyncio.ensure_future(self._read(room))
            self._loading[room] = loading
        # Shielded: one caller giving up must not cancel the read the others wait for.
        return await asyncio.shield(loading)

    async def _read(self, room: str) -> frozenset[str]:
        generation, began = self._generation, self._clock()
        try:
            members = frozenset(await self._load(room))
        finally:
            if self._loading.get(room) is asyncio.current_task():
                del self._loading[room]
        if generation == self._generation:  # nothing changed while reading: keep it
            self._rooms[room] = (began, members)
            self._rooms.move_to_end(room)
            while len(self._rooms) > self._max_rooms:
                self._rooms.popitem(last=False)
        return members

    def invalidate(self, room: str) -> None:
        self._generation += 1
        self._rooms.pop(room, None)
        self._loading.pop(room, None)

    def clear(self) -> None:
        self._generation += 1
        self._rooms.clear()
        self._loading.clear()

    async def changed(self, rooms: Collection[str]) -> None:
        """The membership of ``rooms`` changed (committed): forget them here and tell every
        other chat node. A failed ring is counted; the other nodes' ``ttl`` bounds it."""
        for room in rooms:
            self.invalidate(room)
        if self._doorbell is None or not rooms:
            return
        try:
            await self._doorbell.ring_many([Ring(MEMBERSHIP_CHANNEL, r.encode()) for r in rooms])
        except Exception as exc:
            self.ring_failures += len(rooms)
            log.warning(
                "could not ring a membership change; other nodes re-read it within ttl",
                extra={"rooms": list(rooms), "error": type(exc).__name__, "ttl": self._ttl},
            )

    async def _follow(self, doorbell: Doorbell) -> None:
        try:
            async for item in doorbell.subscribe(MEMBERSHIP_CHANNEL, SESSION_ENDED_CHANNEL):
                if isinstance(item, Resync):
                    self.clear()
                    self.live = True
                elif item.channel == MEMBERSHIP_CHANNEL:
                    self.invalidate(item.payload.decode(errors="replace"))
                else:  # a session ended
                    self.clear()
        except Exception as exc:
            log.error(
                "membership rings stopped; every check reads the store",
                extra={"error": type(exc).__name__},
            )
        finally:
            self.live = False
            self.clear()

    @contextlib.asynccontextmanager
    async def running(self, doorbell: Doorbell) -> AsyncIterator[MemberCache]:
        """Follow membership changes on ``doorbell`` (and ring ours there) until the block
        exits; the cache answers from the first ``Resync`` on."""
        self._doorbell = doorbell
        task = asyncio.create_task(self._follow(doorbell), name="chat-member-cache")
        try:
            yield self
        finally:
            self._doorbell = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
