"""Rooms, their members and invites, and the per-room membership log (SQL only).

Every change to a room happens inside ``RoomStore.locked(room_id)``: its first statement
writes the room row, which locks it (MariaDB) or takes the write lock (SQLite) before
anything is read, so concurrent changes to one room queue up and the log's ``seq`` stays
contiguous (1, 2, 3 … per room, never a gap or a repeat).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.protocol.membership import Action, Role, RoomKind
from backend.stores.relational.schema import (
    membership_log,
    room_invites,
    room_members,
    rooms,
    users,
)


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    kind: RoomKind
    name: str | None
    topic: str | None
    creator_id: str | None
    direct_key: str | None
    log_seq: int
    created_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    role: Role
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Invite:
    room_id: str
    room_name: str | None
    user_id: str
    inviter_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LogEntry:
    room_id: str
    seq: int
    action: Action
    actor_id: str
    target_id: str | None
    role: Role | None
    created_at: datetime
    device_id: str | None = None
    signature: str | None = None


class DirectRoomExists(Exception):
    """Another request created the 1:1 room for this pair first."""


class RoomTx:
    """One transaction on one locked room; leave the ``with`` block by raising to undo it."""

    def __init__(self, conn: AsyncConnection, room: Room) -> None:
        self.conn = conn
        self.room = room
        self.membership_changed = False
        """Whether a member came or went (``RoomStore.before_commit`` is called then)."""

    async def member(self, user_id: str) -> Member | None:
        row = (
            await self.conn.execute(
                select(room_members).where(
                    room_members.c.room_id == self.room.id, room_members.c.user_id == user_id
                )
            )
        ).first()
        return None if row is None else Member(row.user_id, row.role, row.joined_at)

    async def members(self) -> list[Member]:
        return await _members(self.conn, self.room.id)

    async def invite(self, user_id: str) -> Invite | None:
        row = (
            await self.conn.execute(
                select(room_invites).where(
                    room_invites.c.room_id == self.room.id, room_invites.c.user_id == user_id
                )
            )
        ).first()
        if row is None:
            return None
        return Invite(row.room_id, self.room.name, row.user_id, row.inviter_id, row.created_at)

    async def invitees(self) -> list[str]:
        return list(
            await self.conn.scalars(
                select(room_invites.c.user_id).where(room_invites.c.room_id == self.room.id)
            )
        )

    async def add_member(self, user_id: str, role: Role, now: datetime) -> None:
        self.membership_changed = True
        await self.conn.execute(
            insert(room_members).values(
                room_id=self.room.id, user_id=user_id, role=role, joined_at=now
            )
        )

    async def remove_member(self, user_id: str) -> None:
        self.membership_changed = True
        await self.conn.execute(
            delete(room_members).where(
                room_members.c.room_id == self.room.id, room_members.c.user_id == user_id
            )
        )

    async def set_role(self, user_id: str, role: Role) -> None:
        await self.conn.execute(
            update(room_members)
            .where(room_members.c.room_id == self.room.id, room_members.c.user_id == user_id)
            .values(role=role)
        )

    async def add_invite(self, user_id: str, inviter_id: str, now: datetime) -> None:
        await self.conn.execute(
            insert(room_invites).values(
                room_id=self.room.id, user_id=user_id, inviter_id=inviter_id, created_at=now
            )
        )

    async def delete_invite(self, user_id: str) -> bool:
        result = await self.conn.execute(
            delete(room_invites).where(
                room_invites.c.room_id == self.room.id, room_invites.c.user_id == user_id
            )
        )
        return result.rowcount == 1

    async def mark_deleted(self, now: datetime) -> None:
        """Soft-delete: members and invites go, the id and the membership log stay."""
        self.membership_changed = True
        for table in (room_members, room_invites):
            await self.conn.execute(delete(table).where(table.c.room_id == self.room.id))
        await self.conn.execute(
            update(rooms).where(rooms.c.id == self.room.id).values(deleted_at=now)
        )

    async def append(
        self,
        action: Action,
        actor_id: str,
        target_id: str | None,
        now: datetime,
        *,
        role: Role | None = None,
    ) -> LogEntry:
        """Record a membership change under the next seq of this room."""
        seq = self.room.log_seq + 1
        await self.conn.execute(update(rooms).where(rooms.c.id == self.room.id).values(log_seq=seq))
        entry = LogEntry(self.room.id, seq, action, actor_id, target_id, role, now)
        await self.conn.execute(
            insert(membership_log).values(
                room_id=entry.room_id,
                seq=seq,
                action=action,
                actor_id=actor_id,
                target_id=target_id,
                role=role,
                created_at=now,
            )
        )
        self.room = dataclasses.replace(self.room, log_seq=seq)
        return entry


# The reads on the message path, built once: building a statement cost more CPU than
# sending it and reading the answer.
_MEMBER = select(room_members).where(
    room_members.c.room_id == bindparam("room"), room_members.c.user_id == bindparam("user")
)
_MEMBERS = (
    select(room_members)
    .where(room_members.c.room_id == bindparam("room"))
    .order_by(room_members.c.joined_at, room_members.c.user_id)
)
_MEMBERS_OF_ROOMS = (
    select(room_members.c.room_id, room_members.c.user_id)
    .where(room_members.c.room_id.in_(bindparam("rooms", expanding=True)))
    .order_by(room_members.c.joined_at, room_members.c.user_id)
)
_ROOM_IDS_OF = (
    select(room_members.c.room_id)
    .where(room_members.c.user_id == bindparam("user"))
    .order_by(room_members.c.room_id)
)


async def _nothing(_room_id: str) -> None:
    return None


class RoomStore:
    def __init__(self, engine: AsyncEngine, reads: AsyncEngine | None = None) -> None:
        """``reads`` (``open_read_engine``) serves the single-statement reads of the message
        path: who is in a room, is one user in it, which rooms one user is in."""
        self._engine = engine
        self._reads = reads or engine
        self.engine = engine
        self.before_commit: Callable[[str], Awaitable[None]] = _nothing
        """Called with the room's id inside a transaction that changed its members, just
        before the commit: the member caches stop keeping the room (``member_cache.py``)."""

    @contextlib.asynccontextmanager
    async def locked(self, room_id: str) -> AsyncIterator[RoomTx | None]:
        """A transaction holding the room's lock; None when there is no live room by that id."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(rooms)
                .where(rooms.c.id == room_id, rooms.c.deleted_at.is_(None))
                .values(log_seq=rooms.c.log_seq)
            )
            row = (
                await conn.execute(
                    select(rooms).where(rooms.c.id == room_id, rooms.c.deleted_at.is_(None))
                )
            ).first()
            tx = None if row is None else RoomTx(conn, Room(**row._mapping))
            yield tx
            if tx is not None and tx.membership_changed:
                await self.before_commit(room_id)

    @contextlib.asynccontextmanager
    async def create(self, room: Room) -> AsyncIterator[RoomTx]:
        """Insert a new room and go on changing it in the same transaction.

        Raises ``DirectRoomExists`` when a 1:1 room for the pair exists already."""
        async with self._engine.begin() as conn:
            try:
                await conn.execute(insert(rooms).values(_asdict(room)))
            except IntegrityError:
                raise DirectRoomExists(room.direct_key) from None
            tx = RoomTx(conn, room)
            yield tx
            if tx.membership_changed:
                await self.before_commit(room.id)

    async def direct_room(self, direct_key: str) -> Room | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(rooms).where(rooms.c.direct_key == direct_key))
            ).first()
        return None if row is None else Room(**row._mapping)

    async def retire_direct(self, room_id: str) -> None:
        """Free a 1:1 room's pair key so a new room can be made for the pair; the old room
        lives on for whoever is still in it."""
        async with self._engine.begin() as conn:
            await conn.execute(update(rooms).where(rooms.c.id == room_id).values(direct_key=None))

    async def accounts_newer_than(self, user_ids: list[str], when: datetime) -> bool:
        """Whether any of the accounts was created after ``when`` (an id taken again after
        its first owner deleted their account)."""
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(exists().where(users.c.id.in_(user_ids), users.c.created_at > when))
            )
        return bool(found)

    # --- reads ---------------------------------------------------------------------------------
    async def room(self, room_id: str) -> Room | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(rooms).where(rooms.c.id == room_id, rooms.c.deleted_at.is_(None))
                )
            ).first()
        return None if row is None else Room(**row._mapping)

    async def member(self, room_id: str, user_id: str) -> Member | None:
        async with self._reads.connect() as conn:
            row = (await conn.execute(_MEMBER, {"room": room_id, "user": user_id})).first()
        return None if row is None else Member(row.user_id, row.role, row.joined_at)

    async def members(self, room_id: str) -> list[Member]:
        async with self._reads.connect() as conn:
            return await _members(conn, room_id)

    async def members_of_rooms(self, room_ids: Collection[str]) -> dict[str, list[str]]:
        """The member ids of each of ``room_ids`` in one query (a room without members, or
        unknown, maps to an empty list), each room's members in ``members`` order."""
        found: dict[str, list[str]] = {room_id: [] for room_id in room_ids}
        if not found:
            return found
        async with self._reads.connect() as conn:
            rows = await conn.execute(_MEMBERS_OF_ROOMS, {"rooms": list(found)})
            for room_id, user_id in rows:
                found[room_id].append(user_id)
        return found

    async def invitees(self, room_id: str) -> list[str]:
        async with self._engine.connect() as conn:
            return list(
                await conn.scalars(
                    select(room_invites.c.user_id)
                    .where(room_invites.c.room_id == room_id)
                    .order_by(room_invites.c.user_id)
                )
            )

    async def rooms_of(self, user_id: str) -> list[tuple[Room, Role, int]]:
        """The user's rooms with the user's role and the member count, oldest first."""
        counts = (
            select(room_members.c.room_id, func.count().label("n"))
            .group_by(room_members.c.room_id)
            .subquery()
        )
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(rooms, room_members.c.role, counts.c.n)
                .join(room_members, room_members.c.room_id == rooms.c.id)
                .join(counts, counts.c.room_id == rooms.c.id)
                .where(room_members.c.user_id == user_id)
                .order_by(rooms.c.created_at, rooms.c.id)
            )
            out = []
            for r in rows:
                m = dict(r._mapping)
                role, n = m.pop("role"), m.pop("n")
                out.append((Room(**m), role, int(n)))
        return out

    async def room_ids_of(self, user_id: str) -> list[str]:
        async with self._reads.connect() as conn:
            return list(await conn.scalars(_ROOM_IDS_OF, {"user": user_id}))

    async def invites_of(self, user_id: str) -> list[Invite]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(room_invites, rooms.c.name)
                .join(rooms, rooms.c.id == room_invites.c.room_id)
                .where(room_invites.c.user_id == user_id)
                .order_by(room_invites.c.created_at, room_invites.c.room_id)
            )
        return [Invite(r.room_id, r.name, r.user_id, r.inviter_id, r.created_at) for r in rows]

    async def log(self, room_id: str, after: int, limit: int) -> list[LogEntry]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(membership_log)
                .where(membership_log.c.room_id == room_id, membership_log.c.seq > after)
                .order_by(membership_log.c.seq)
                .limit(limit)
            )
        return [LogEntry(**r._mapping) for r in rows]


async def _members(conn: AsyncConnection, room_id: str) -> list[Member]:
    rows = await conn.execute(_MEMBERS, {"room": room_id})
    return [Member(r.user_id, r.role, r.joined_at) for r in rows]


def _asdict(room: Room) -> dict[str, object]:
    return {name: getattr(room, name) for name in Room.__slots__}
