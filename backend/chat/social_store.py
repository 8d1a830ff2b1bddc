"""The social graph's relational store: friendships, friend requests and blocks.

SQL only (SQLAlchemy Core, MariaDB and SQLite alike); the rules live in ``friends.py``.
The contract suite (tests/contracts/test_social_store.py) runs it against both backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import and_, delete, exists, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.stores.relational.schema import blocks, friend_requests, friends, users


@dataclass(frozen=True, slots=True)
class Since:
    """Another user and when the relation (friendship, request, block) began."""

    user_id: str
    at: datetime


class RequestOutcome(Enum):
    PENDING = "pending"
    """A new request waits for the other user."""
    FRIENDS = "friends"
    """The other user had asked first: the two are friends now."""
    DUPLICATE = "duplicate"
    """The same request is already pending."""


@dataclass(frozen=True, slots=True)
class Severed:
    """What a block removed between the two users."""

    friendship: bool
    request_out: bool
    """The blocker's own pending request to the blocked user."""
    request_in: bool
    """The blocked user's pending request to the blocker."""


class SocialStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def user_exists(self, user_id: str) -> bool:
        async with self._engine.connect() as conn:
            return (await conn.scalar(select(users.c.id).where(users.c.id == user_id))) is not None

    # --- reads ---------------------------------------------------------------------------------
    async def friends_of(self, user_id: str) -> list[Since]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(friends.c.friend_id, friends.c.since)
                .where(friends.c.user_id == user_id)
                .order_by(friends.c.friend_id)
            )
        return [Since(r.friend_id, r.since) for r in rows]

    async def requests_to(self, user_id: str) -> list[Since]:
        """Pending requests the user received."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(friend_requests.c.from_id, friend_requests.c.created_at)
                .where(friend_requests.c.to_id == user_id)
                .order_by(friend_requests.c.created_at, friend_requests.c.from_id)
            )
        return [Since(r.from_id, r.created_at) for r in rows]

    async def requests_from(self, user_id: str) -> list[Since]:
        """Pending requests the user sent."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(friend_requests.c.to_id, friend_requests.c.created_at)
                .where(friend_requests.c.from_id == user_id)
                .order_by(friend_requests.c.created_at, friend_requests.c.to_id)
            )
        return [Since(r.to_id, r.created_at) for r in rows]

    async def blocked_by(self, user_id: str) -> list[Since]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(blocks.c.blocked_id, blocks.c.created_at)
                .where(blocks.c.blocker_id == user_id)
                .order_by(blocks.c.blocked_id)
            )
        return [Since(r.blocked_id, r.created_at) for r in rows]

    async def are_friends(self, a: str, b: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(exists().where(friends.c.user_id == a, friends.c.friend_id == b))
            )
        return bool(found)

    async def has_blocked(self, blocker: str, blocked: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(
                    exists().where(blocks.c.blocker_id == blocker, blocks.c.blocked_id == blocked)
                )
            )
        return bool(found)

    async def block_between(self, a: str, b: str) -> bool:
        """Whether either user has blocked the other."""
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(
                    exists().where(
                        or_(
                            and_(blocks.c.blocker_id == a, blocks.c.blocked_id == b),
                            and_(blocks.c.blocker_id == b, blocks.c.blocked_id == a),
                        )
                    )
                )
            )
        return bool(found)

    # --- changes -------------------------------------------------------------------------------
    async def request(self, from_id: str, to_id: str, now: datetime) -> RequestOutcome:
        """Ask ``to_id`` for friendship; if they already asked ``from_id``, that request is
        taken as the answer and the two become friends at once."""
        try:
            async with self._engine.begin() as conn:
                answered = await _delete_request(conn, to_id, from_id)
                if answered:
                    await _befriend(conn, from_id, to_id, now)
                    return RequestOutcome.FRIENDS
                await conn.execute(
                    insert(friend_requests).values(from_id=from_id, to_id=to_id, created_at=now)
                )
        except IntegrityError:
            return RequestOutcome.DUPLICATE
        return RequestOutcome.PENDING

    async def accept(self, from_id: str, to_id: str, now: datetime) -> bool:
        """``to_id`` accepts the pending request of ``from_id``; False if there is none."""
        async with self._engine.begin() as conn:
            if not await _delete_request(conn, from_id, to_id):
                return False
            await _befriend(conn, from_id, to_id, now)
        return True

    async def delete_request(self, from_id: str, to_id: str) -> bool:
        """Decline (by ``to_id``) or cancel (by ``from_id``); False if nothing was pending."""
        async with self._engine.begin() as conn:
            return await _delete_request(conn, from_id, to_id)

    async def unfriend(self, a: str, b: str) -> bool:
        async with self._engine.begin() as conn:
            return await _unfriend(conn, a, b)

    async def block(self, blocker: str, blocked: str, now: datetime) -> Severed:
        """Block ``blocked`` and cut every tie between the two (idempotent)."""
        async with self._engine.begin() as conn:
            severed = Severed(
                friendship=await _unfriend(conn, blocker, blocked),
                request_out=await _delete_request(conn, blocker, blocked),
                request_in=await _delete_request(conn, blocked, blocker),
            )
            already = await conn.scalar(
                select(
                    exists().where(blocks.c.blocker_id == blocker, blocks.c.blocked_id == blocked)
                )
            )
            if not already:
                await conn.execute(
                    insert(blocks).values(blocker_id=blocker, blocked_id=blocked, created_at=now)
                )
        return severed

    async def unblock(self, blocker: str, blocked: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(blocks).where(blocks.c.blocker_id == blocker, blocks.c.blocked_id == blocked)
            )
        return result.rowcount == 1


async def _delete_request(conn: AsyncConnection, from_id: str, to_id: str) -> bool:
    result = await conn.execute(
        delete(friend_requests).where(
            friend_requests.c.from_id == from_id, friend_requests.c.to_id == to_id
        )
    )
    return result.rowcount == 1


async def _befriend(conn: AsyncConnection, a: str, b: str, now: datetime) -> None:
    await conn.execute(
        insert(friends),
        [
            {"user_id": a, "friend_id": b, "since": now},
            {"user_id": b, "friend_id": a, "since": now},
        ],
    )


async def _unfriend(conn: AsyncConnection, a: str, b: str) -> bool:
    result = await conn.execute(
        delete(friends).where(
            or_(
                and_(friends.c.user_id == a, friends.c.friend_id == b),
                and_(friends.c.user_id == b, friends.c.friend_id == a),
            )
        )
    )
    return result.rowcount > 0
