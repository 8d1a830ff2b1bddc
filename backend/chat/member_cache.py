"""Who is in which room, remembered between membership changes: the member check of every
send, and the recipients of every push.

Every ``send`` (and history, typing and read) is checked against the room's members, and the
fan-out pushes each committed message to them. Read from the relational store, that is a
round trip per message. Here a room's members are read once and kept until its membership
changes, so the answer stays the store's:

- a change is rung on ``MEMBERSHIP_CHANNEL`` twice: ``changing`` before its transaction
  commits (``RoomStore.locked``'s ``before_commit``) and ``changed`` after. Between the two,
  no node keeps the room: every check and push reads the store. The node that commits also
  drops the room at once;
- the rings reach the cache through the fan-out's own doorbell subscription, in the order
  Redis took them, commit rings included. A message committed after a removal is rung after
  that removal's ``changing``, so by the time the fan-out pushes it the room is unsettled or
  read again: "membership at push time" holds as when every push read the store;
- the cache answers only while that subscription is live, drops everything when it
  (re)starts (``Resync``: rings may have been missed) and keeps nothing for ``GRACE``
  seconds after (a change that was under way then may have lost its ``changing``);
- an ended session (``sessions.ended``: sign-out, a deleted account) drops everything, so an
  account id taken again never inherits the rooms of the account that had it;
- a read that overlapped a change is used once and not kept, a check that starts after a
  change never joins a read that began before it, and an empty room is never kept;
- an entry is read again after ``ttl`` seconds, and a room stays unsettled at most ``ttl``
  seconds: the bound on how stale an answer can be if a ring is lost while the subscription
  still looks alive (Redis seen down only at reconnect, or down for the node that changed
  the room only). ``ttl`` 0 turns the cache off: every check and push reads the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping

from backend.common.auth_guard import SESSION_ENDED_CHANNEL
from backend.stores.ephemeral.port import Doorbell, Resync, Ring

log = logging.getLogger("sealchat.chat.members")

MEMBERSHIP_CHANNEL = "membership"
"""Doorbell channel: the payload is a room id (its membership changed: committed), or
``CHANGING`` and a room id (a change of it is about to commit)."""
CHANGING = b"~"
GRACE = 1.0
"""Seconds after a (re)subscription during which nothing is kept (see the docstring)."""
MAX_ROOMS = 20_000
"""Rooms remembered at most; the least recently used go first."""

LoadMembers = Callable[[str], Awaitable[Collection[str]]]
LoadRooms = Callable[[Collection[str]], Awaitable[Mapping[str, Collection[str]]]]
CheckMember = Callable[[str, str], Awaitable[bool]]


class MemberCache:
    """Room → its members, invalidated by every membership change (module docstring)."""

    def __init__(
        self,
        load: LoadMembers,
        check: CheckMember,
        load_rooms: LoadRooms,
        *,
        ttl: float,
        max_rooms: int = MAX_ROOMS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._check = check
        self._load_rooms = load_rooms
        self._ttl = ttl
        self._max_rooms = max_rooms
        self._clock = clock
        self._rooms: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[frozenset[str]]] = {}
        self._generation = 0
        self._unsettled: dict[str, float] = {}
        """Rooms rung ``changing`` and not yet ``changed``: until when they are not kept."""
        self._keep_from = 0.0
        self._doorbell: Doorbell | None = None
        self.live = False
        """Whether membership rings are arriving (only then does the cache answer)."""
        self.hits = 0
        self.misses = 0
        self.ring_failures = 0

    async def is_member(self, room: str, user: str) -> bool:
        if not self._keeps(room):
            self.misses += 1
            return await self._check(room, user)
        entry = self._rooms.get(room)
        if entry is not None and self._clock() - entry[0] < self._ttl:
            self._rooms.move_to_end(room)
            self.hits += 1
            return user in entry[1]
        self.misses += 1
        return user in await self._members(room)

    async def members_of_rooms(self, rooms: Collection[str]) -> dict[str, frozenset[str]]:
        """The members of each of ``rooms`` (the fan-out's recipients), those not kept read
        in one query."""
        found: dict[str, frozenset[str]] = {}
        now = self._clock()
        for room in rooms:
            entry = self._rooms.get(room) if self._keeps(room) else None
            if entry is not None and now - entry[0] < self._ttl:
                self._rooms.move_to_end(room)
                found[room] = entry[1]
        self.hits += len(found)
        missing = [room for room in rooms if room not in found]
        if missing:
            self.misses += len(missing)
            generation, began = self._generation, self._clock()
            read = await self._load_rooms(missing)
            for room in missing:
                found[room] = members = frozenset(read.get(room, ()))
                if generation == self._generation:
                    self._keep(room, began, members)
        return found

    def _keeps(self, room: str) -> bool:
        """Whether ``room`` may be answered from memory and kept now."""
        if not self.live or self._ttl <= 0 or self._clock() < self._keep_from:
            return False
        until = self._unsettled.get(room)
        if until is None:
            return True
        if self._clock() < until:
            return False
        del self._unsettled[room]  # its ``changed`` was lost: ``ttl`` bounds that
        return True

    def _keep(self, room: str, since: float, members: frozenset[str]) -> None:
        if not members or not self._keeps(room):
            return  # an unknown or deleted room, or one that is changing: ask again next time
        self._rooms[room] = (since, members)
        self._rooms.move_to_end(room)
        while len(self._rooms) > self._max_rooms:
            self._rooms.popitem(last=False)

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
            self._keep(room, began, members)
        return members

    def invalidate(self, room: str) -> None:
        self._generation += 1
        self._rooms.pop(room, None)
        self._loading.pop(room, None)

    def clear(self) -> None:
        self._generation += 1
        self._rooms.clear()
        self._loading.clear()

    def follow(self, item: Ring | Resync) -> None:
        """Take in one item of the doorbell subscription that carries the commit rings (the
        fan-out's), in its order: membership rings, ended sessions, and its ``Resync``."""
        if isinstance(item, Resync):
            self.clear()
            self._unsettled.clear()
            self._keep_from = self._clock() + GRACE
            self.live = True
        elif item.channel == MEMBERSHIP_CHANNEL:
            payload = item.payload
            changing = payload.startswith(CHANGING)
            room = payload[len(CHANGING) if changing else 0 :].decode(errors="replace")
            self.invalidate(room)
            if changing:
                self._unsettle(room)
            else:
                self._unsettled.pop(room, None)
        elif item.channel == SESSION_ENDED_CHANNEL:
            self.clear()

    def _unsettle(self, room: str) -> None:
        now = self._clock()
        self._unsettled[room] = now + self._ttl
        if len(self._unsettled) > self._max_rooms:  # lost ``changed`` rings of rooms unused since
            self._unsettled = {r: until for r, until in self._unsettled.items() if until > now}

    def stopped(self) -> None:
        """The subscription ended: every check and push reads the store until the next one."""
        self.live = False
        self.clear()
        self._unsettled.clear()

    async def changing(self, room: str) -> None:
        """A change of ``room`` is about to commit (called inside its transaction): every
        node stops keeping it until ``changed``, this one at once. A failed ring is counted;
        ``ttl`` bounds it."""
        self.invalidate(room)
        self._unsettle(room)
        await self._ring([room], CHANGING)

    async def changed(self, rooms: Collection[str]) -> None:
        """The membership of ``rooms`` changed (committed): forget them here and tell every
        other chat node. A failed ring is counted; the other nodes' ``ttl`` bounds it."""
        for room in rooms:
            self.invalidate(room)
            self._unsettled.pop(room, None)
        await self._ring(rooms, b"")

    async def _ring(self, rooms: Collection[str], prefix: bytes) -> None:
        if self._doorbell is None or not rooms:
            return
        try:
            await self._doorbell.ring_many(
                [Ring(MEMBERSHIP_CHANNEL, prefix + r.encode()) for r in rooms]
            )
        except Exception as exc:
            self.ring_failures += len(rooms)
            log.warning(
                "could not ring a membership change; other nodes re-read it within ttl",
                extra={"rooms": list(rooms), "error": type(exc).__name__, "ttl": self._ttl},
            )

    @contextlib.asynccontextmanager
    async def running(self, doorbell: Doorbell) -> AsyncIterator[MemberCache]:
        """Ring our changes on ``doorbell`` until the block exits. What the cache hears comes
        through ``follow``, from the fan-out's subscription."""
        self._doorbell = doorbell
        try:
            yield self
        finally:
            self._doorbell = None
