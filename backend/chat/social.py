"""The chat service's social graph and rooms, as one object the rest of chat talks to.

The message pipeline and the WebSocket gateway ask it who is in a room (``is_member``,
``members``, ``rooms_of``) and whom presence may reach (``friends_of``); the gateway plugs its
push function in with ``set_notifier``. No HTTP here: the views live in ``social_views.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.chat.friends import FriendService
from backend.chat.member_cache import MemberCache
from backend.chat.notifier import Event, Notices, Notifier, nobody
from backend.chat.room_store import RoomStore
from backend.chat.rooms import RoomService
from backend.chat.social_store import SocialStore
from backend.common.events import EventPublisher

__all__ = ["Event", "Notifier", "SocialService"]


class SocialService:
    def __init__(
        self,
        engine: AsyncEngine,
        events: EventPublisher,
        *,
        notifier: Notifier = nobody,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        member_cache_seconds: float = 0.0,
        reads: AsyncEngine | None = None,
    ) -> None:
        self.notices = Notices(notifier)
        self._graph = SocialStore(engine)
        self.rooms = RoomService(
            store=RoomStore(engine, reads),
            social=self._graph,
            events=events,
            notices=self.notices,
            clock=clock,
        )
        self.members_cache = MemberCache(
            self.rooms.members,
            self.rooms.is_member,
            self.rooms.members_of_rooms,
            ttl=member_cache_seconds,
        )
        """Answers ``is_member`` and ``members_of_rooms`` between changes once the fan-out's
        subscription feeds it (``member_cache.py``)."""
        self.rooms.store.before_commit = self.members_cache.changing
        self.rooms.on_membership_changed = self.members_cache.changed
        self.friends = FriendService(
            store=self._graph, rooms=self.rooms, events=events, notices=self.notices, clock=clock
        )

    def set_notifier(self, notifier: Notifier) -> None:
        """Where membership, room and friend events go from now on (the gateway's push)."""
        self.notices.notifier = notifier

    async def is_member(self, room_id: str, user_id: str) -> bool:
        """Whether ``user_id`` is in the room now: the check before every send and read."""
        return await self.members_cache.is_member(room_id, user_id)

    async def members(self, room_id: str) -> list[str]:
        """Everyone in the room now (empty for an unknown or deleted room)."""
        return await self.rooms.members(room_id)

    async def members_of_rooms(self, room_ids: Collection[str]) -> Mapping[str, Collection[str]]:
        """Who is in each of the rooms now, those not kept read at once (the recipients of
        a batch of rings: "membership at push time", ``member_cache.py``)."""
        return await self.members_cache.members_of_rooms(room_ids)

    async def rooms_of(self, user_id: str) -> list[str]:
        """The ids of every room the user is in (what a socket subscribes to on connect)."""
        return await self.rooms.rooms_of(user_id)

    async def friends_of(self, user_id: str) -> list[str]:
        """Who may see the user's presence: friends only (a block ends the friendship)."""
        return [f.user_id for f in await self._graph.friends_of(user_id)]

    async def blocked_between(self, a: str, b: str) -> bool:
        """Whether either user blocked the other."""
        return await self._graph.block_between(a, b)
