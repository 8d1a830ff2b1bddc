"""Read markers: the highest seq each member has read in each room, persisted.

A marker only moves forward (an older ``read`` from a second device changes nothing), never
past the room's newest archived message, and lives on the membership row, so leaving a room
forgets it. Clients get their markers with ``GET /chat/rooms`` and compute unread counts as
``latest seq (from sync) - read_seq``.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.stores.relational.schema import room_members


class ReadMarkers:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def advance(self, room: str, user: str, seq: int) -> bool:
        """Move ``user``'s marker in ``room`` up to ``seq``; False when it was there already
        (or the user is no member)."""
        query = (
            update(room_members)
            .where(
                room_members.c.room_id == room,
                room_members.c.user_id == user,
                room_members.c.read_seq < seq,
            )
            .values(read_seq=seq)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1

    async def marker(self, room: str, user: str) -> int:
        query = select(room_members.c.read_seq).where(
            room_members.c.room_id == room, room_members.c.user_id == user
        )
        async with self._engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def of_user(self, user: str) -> dict[str, int]:
        """Every marker of ``user``, by room."""
        query = select(room_members.c.room_id, room_members.c.read_seq).where(
            room_members.c.user_id == user
        )
        async with self._engine.connect() as conn:
            return {row.room_id: int(row.read_seq) for row in await conn.execute(query)}
