"""Friendships, friend requests and blocks: the rules (no HTTP).

A block cuts every tie (friendship, pending requests, the blocker's seat in the pair's 1:1
room) and keeps new ones from forming: the blocked user cannot request, invite or open a 1:1
room with the blocker, and presence goes to friends only. The blocked user is told what they
would see if the blocker had removed them by hand, never the word "block".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from backend.chat import schemas
from backend.chat.notifier import Notices
from backend.chat.rooms import RoomService
from backend.chat.social_store import RequestOutcome, SocialStore
from backend.common.errors import ApiError
from backend.common.events import EventPublisher
from backend.protocol.errors import ErrorCode


def friend_event(action: str, from_id: str, to_id: str) -> dict[str, str]:
    """``from`` did ``action`` towards ``to``; both sides get the same event."""
    return {"type": "friend_event", "action": action, "from": from_id, "to": to_id}


class FriendService:
    def __init__(
        self,
        *,
        store: SocialStore,
        rooms: RoomService,
        events: EventPublisher,
        notices: Notices,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.rooms = rooms
        self.events = events
        self.notices = notices
        self.clock = clock

    async def _changed(self, action: str, from_id: str, to_id: str) -> None:
        self.events.emit("friend", from_id, action=action, other=to_id)
        await self.notices.send([from_id, to_id], friend_event(action, from_id, to_id))

    async def _existing_other(self, user_id: str, other: str, what: str) -> None:
        if other == user_id:
            raise ApiError(ErrorCode.INVALID, f"you cannot {what} yourself")
        if not await self.store.user_exists(other):
            raise ApiError(ErrorCode.NOT_FOUND, f"no user {other!r}: check the id")

    # --- reads ---------------------------------------------------------------------------------
    async def list_friends(self, user_id: str) -> schemas.FriendList:
        return schemas.FriendList(
            friends=[
                schemas.Friend(id=f.user_id, since=f.at)
                for f in await self.store.friends_of(user_id)
            ],
            incoming=[
                schemas.Pending(id=r.user_id, at=r.at)
                for r in await self.store.requests_to(user_id)
            ],
            outgoing=[
                schemas.Pending(id=r.user_id, at=r.at)
                for r in await self.store.requests_from(user_id)
            ],
        )

    async def list_blocked(self, user_id: str) -> schemas.BlockList:
        return schemas.BlockList(
            blocked=[
                schemas.Pending(id=b.user_id, at=b.at) for b in await self.store.blocked_by(user_id)
            ]
        )

    # --- changes -------------------------------------------------------------------------------
    async def request(self, user_id: str, target: str) -> schemas.FriendRequestOut:
        await self._existing_other(user_id, target, "befriend")
        if await self.store.has_blocked(user_id, target):
            raise ApiError(ErrorCode.CONFLICT, f"you blocked {target!r}: unblock them first")
        if await self.store.has_blocked(target, user_id):
            raise ApiError(
                ErrorCode.FORBIDDEN, f"{target!r} does not take friend requests from you"
            )
        if await self.store.are_friends(user_id, target):
            raise ApiError(ErrorCode.CONFLICT, f"you and {target!r} are friends already")
        outcome = await self.store.request(user_id, target, self.clock())
        if outcome is RequestOutcome.DUPLICATE:
            raise ApiError(ErrorCode.CONFLICT, f"your request to {target!r} is pending already")
        if outcome is RequestOutcome.FRIENDS:
            await self._changed("accept", user_id, target)
            return schemas.FriendRequestOut(status="friends")
        await self._changed("request", user_id, target)
        return schemas.FriendRequestOut(status="pending")

    async def accept(self, user_id: str, requester: str) -> None:
        if not await self.store.accept(requester, user_id, self.clock()):
            raise ApiError(ErrorCode.NOT_FOUND, f"no friend request from {requester!r}")
        await self._changed("accept", user_id, requester)

    async def decline(self, user_id: str, requester: str) -> None:
        if not await self.store.delete_request(requester, user_id):
            raise ApiError(ErrorCode.NOT_FOUND, f"no friend request from {requester!r}")
        await self._changed("decline", user_id, requester)

    async def cancel(self, user_id: str, target: str) -> None:
        if not await self.store.delete_request(user_id, target):
            raise ApiError(ErrorCode.NOT_FOUND, f"you have no pending request to {target!r}")
        await self._changed("cancel", user_id, target)

    async def remove(self, user_id: str, friend: str) -> None:
        if not await self.store.unfriend(user_id, friend):
            raise ApiError(ErrorCode.NOT_FOUND, f"{friend!r} is not your friend")
        await self._changed("remove", user_id, friend)

    async def block(self, user_id: str, target: str) -> None:
        """Block ``target`` (idempotent) and cut every tie between the two."""
        await self._existing_other(user_id, target, "block")
        severed = await self.store.block(user_id, target, self.clock())
        await self.rooms.leave_direct(user_id, target)
        self.events.emit("friend", user_id, action="block", other=target)
        await self.notices.send([user_id], friend_event("block", user_id, target))
        for happened, action in (
            (severed.friendship, "remove"),
            (severed.request_out, "cancel"),
            (severed.request_in, "decline"),
        ):
            if happened:
                await self.notices.send([target], friend_event(action, user_id, target))

    async def unblock(self, user_id: str, target: str) -> None:
        if not await self.store.unblock(user_id, target):
            raise ApiError(ErrorCode.NOT_FOUND, f"you have not blocked {target!r}")
        self.events.emit("friend", user_id, action="unblock", other=target)
        await self.notices.send([user_id], friend_event("unblock", user_id, target))
