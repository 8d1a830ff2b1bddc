"""Reading rooms: the membership check every read passes, and the shapes readers get.

A room the caller is not in answers exactly like a room that does not exist (404), so room
ids cannot be probed. ``RoomService`` (rooms.py) adds the changes on top.
"""

from __future__ import annotations

from collections.abc import Collection

from backend.chat import schemas
from backend.chat.read_markers import ReadMarkers
from backend.chat.room_store import Member, Room, RoomStore
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode


def not_found(room_id: str) -> ApiError:
    return ApiError(
        ErrorCode.NOT_FOUND,
        f"no room {room_id!r} among yours: check the id, or ask a member to invite you",
    )


def ids(members: list[Member]) -> list[str]:
    return [m.user_id for m in members]


def member_out(m: Member) -> schemas.MemberOut:
    return schemas.MemberOut(id=m.user_id, role=m.role, joined_at=m.joined_at)


class RoomReads:
    def __init__(self, store: RoomStore) -> None:
        self.store = store

    # --- for the message pipeline and the gateway ----------------------------------------------
    async def is_member(self, room_id: str, user_id: str) -> bool:
        return await self.store.member(room_id, user_id) is not None

    async def members(self, room_id: str) -> list[str]:
        return ids(await self.store.members(room_id))

    async def members_of_rooms(self, room_ids: Collection[str]) -> dict[str, list[str]]:
        return await self.store.members_of_rooms(room_ids)

    async def rooms_of(self, user_id: str) -> list[str]:
        return await self.store.room_ids_of(user_id)

    # --- reads ---------------------------------------------------------------------------------
    async def _visible(self, user_id: str, room_id: str) -> Room:
        room = await self.store.room(room_id)
        if room is None or await self.store.member(room_id, user_id) is None:
            raise not_found(room_id)
        return room

    async def list_rooms(self, user_id: str) -> schemas.RoomList:
        read = await ReadMarkers(self.store.engine).of_user(user_id)
        return schemas.RoomList(
            rooms=[
                schemas.RoomSummary(
                    id=r.id,
                    kind=r.kind,
                    name=r.name,
                    topic=r.topic,
                    role=role,
                    member_count=n,
                    read_seq=read.get(r.id, 0),
                )
                for r, role, n in await self.store.rooms_of(user_id)
            ]
        )

    async def get_room(self, user_id: str, room_id: str) -> schemas.RoomOut:
        room = await self._visible(user_id, room_id)
        members = await self.store.members(room_id)
        return schemas.RoomOut(
            id=room.id,
            kind=room.kind,
            name=room.name,
            topic=room.topic,
            creator=room.creator_id,
            created_at=room.created_at,
            members=[member_out(m) for m in members],
            member_count=len(members),
            invited=await self.store.invitees(room_id),
            log_seq=room.log_seq,
        )

    async def list_members(self, user_id: str, room_id: str) -> schemas.MemberList:
        await self._visible(user_id, room_id)
        members = await self.store.members(room_id)
        return schemas.MemberList(
            members=[member_out(m) for m in members],
            member_count=len(members),
        )

    async def membership_log(
        self, user_id: str, room_id: str, query: schemas.LogQuery
    ) -> schemas.MembershipLog:
        room = await self._visible(user_id, room_id)
        entries = await self.store.log(room_id, query.after, query.limit)
        return schemas.MembershipLog(
            room=room_id,
            entries=[
                schemas.LogEntryOut(
                    seq=e.seq,
                    action=e.action,
                    actor=e.actor_id,
                    target=e.target_id,
                    role=e.role,
                    ts=e.created_at,
                    device_id=e.device_id,
                    signature=e.signature,
                )
                for e in entries
            ],
            last_seq=room.log_seq,
        )

    async def list_invites(self, user_id: str) -> schemas.InviteList:
        return schemas.InviteList(
            invites=[
                schemas.InviteOut(
                    room=i.room_id, name=i.room_name, by=i.inviter_id, at=i.created_at
                )
                for i in await self.store.invites_of(user_id)
            ]
        )
