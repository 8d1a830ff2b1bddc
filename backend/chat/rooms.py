"""Rooms and their membership: who may see, join, invite, kick, leave and delete (no HTTP).

Every change is one transaction on the locked room that also appends the membership-log
entry; the log service and the notifier hear of it only after it has committed.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from backend.chat import schemas
from backend.chat.notifier import Event, Notices
from backend.chat.room_reads import RoomReads, ids, not_found
from backend.chat.room_store import DirectRoomExists, LogEntry, Member, Room, RoomStore, RoomTx
from backend.chat.social_store import SocialStore
from backend.common.errors import ApiError
from backend.common.events import EventPublisher
from backend.protocol.errors import ErrorCode
from backend.protocol.membership import Action

DIRECT: Final = "direct"
GROUP: Final = "group"
ADMIN: Final = "admin"
MEMBER: Final = "member"


@dataclass
class Outbox:
    """What to tell the log service and the users, once the change has committed."""

    records: list[tuple[LogEntry, dict[str, Any]]] = field(default_factory=list)
    notices: list[tuple[list[str], Event]] = field(default_factory=list)

    def record(self, entry: LogEntry, **data: Any) -> None:
        self.records.append((entry, data))

    def tell(self, users: list[str], event: Event) -> None:
        self.notices.append((users, event))


log = logging.getLogger("sealchat.chat.rooms")


async def _nothing(room_id: str) -> None:
    """No store to purge (a process without documents, e.g. unit tests of rooms alone)."""


async def _nobody_caches(room_ids: Collection[str]) -> None:
    """No member cache to tell (unit tests of rooms alone)."""


def new_room_id() -> str:
    """``r_`` and 22 url-safe characters: 128 random bits, unguessable and never reused."""
    return "r_" + secrets.token_urlsafe(16)


def direct_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def member_event(entry: LogEntry, count: int) -> Event:
    event: Event = {
        "type": "member_event",
        "room": entry.room_id,
        "action": entry.action,
        "user": entry.target_id,
        "actor": entry.actor_id,
        "member_count": count,
        "log_seq": entry.seq,
    }
    if entry.role is not None:
        event["role"] = entry.role
    return event


class RoomService(RoomReads):
    """Every change to a room and its membership, each one locked transaction."""

    def __init__(
        self,
        *,
        store: RoomStore,
        social: SocialStore,
        events: EventPublisher,
        notices: Notices,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(store)
        self.social = social
        self.events = events
        self.notices = notices
        self.clock = clock
        self.on_deleted: Callable[[str], Awaitable[None]] = _nothing
        """Called once a room is deleted: the chat service purges its messages and files."""
        self.on_membership_changed: Callable[[Collection[str]], Awaitable[None]] = _nobody_caches
        """Called after every committed change, before anyone is told: the member caches
        forget the rooms (``member_cache.py``)."""

    # --- changes -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _as_member(self, user_id: str, room_id: str) -> AsyncIterator[tuple[RoomTx, Member]]:
        async with self.store.locked(room_id) as tx:
            me = None if tx is None else await tx.member(user_id)
            if tx is None or me is None:
                raise not_found(room_id)
            yield tx, me

    async def _flush(self, outbox: Outbox) -> None:
        if outbox.records:
            await self.on_membership_changed(dict.fromkeys(e.room_id for e, _ in outbox.records))
        for entry, data in outbox.records:
            if entry.target_id is not None and entry.target_id != entry.actor_id:
                data["target"] = entry.target_id
            self.events.emit(
                "room", entry.room_id, action=entry.action, actor=entry.actor_id, **data
            )
        for users, event in outbox.notices:
            await self.notices.send(users, event)
        for entry, _ in outbox.records:
            if entry.action == "delete":
                try:
                    await self.on_deleted(entry.room_id)
                except Exception:
                    # The room is gone for everyone already; what is left is unreadable
                    # ciphertext that no member can reach.
                    log.exception("purging a deleted room failed", extra={"room": entry.room_id})

    async def create_group(self, user_id: str, body: schemas.GroupIn) -> schemas.RoomOut:
        now = self.clock()
        room = Room(
            new_room_id(), GROUP, body.name, body.topic or None, user_id, None, 0, now, None
        )
        async with self.store.create(room) as tx:
            await tx.add_member(user_id, ADMIN, now)
            entry = await tx.append("create", user_id, user_id, now)
        outbox = Outbox()
        outbox.record(entry, kind=GROUP)
        outbox.tell([user_id], member_event(entry, 1))
        await self._flush(outbox)
        return await self.get_room(user_id, room.id)

    async def open_direct(self, user_id: str, other: str) -> tuple[schemas.RoomOut, bool]:
        """The pair's 1:1 room, made on first use and reopened (both back in) afterwards;
        True when it was made now."""
        if other == user_id:
            raise ApiError(ErrorCode.INVALID, "a 1:1 room needs someone else: pick a friend")
        if not await self.social.are_friends(user_id, other) or await self.social.block_between(
            user_id, other
        ):
            raise ApiError(
                ErrorCode.FORBIDDEN,
                f"you can open a 1:1 room only with a friend: send {other!r} a friend request",
            )
        key, pair, outbox = direct_key(user_id, other), (user_id, other), Outbox()
        room = await self.store.direct_room(key)
        if room is not None and await self.store.accounts_newer_than(list(pair), room.created_at):
            # One of the ids belongs to a new account now: the old room is not theirs.
            await self.store.retire_direct(room.id)
            room = None
        created = False
        if room is None:
            fresh = Room(new_room_id(), DIRECT, None, None, user_id, key, 0, self.clock(), None)
            with contextlib.suppress(DirectRoomExists):
                async with self.store.create(fresh) as tx:
                    await self._add_pair(tx, user_id, pair, outbox)
                created = True
            # Lost a race with the other user's request: reopen the room that one made.
            room = fresh if created else await self.store.direct_room(key)
            outbox = outbox if created else Outbox()
        if room is None:
            raise ApiError(ErrorCode.CONFLICT, "the room changed meanwhile: try again")
        if not created:
            async with self.store.locked(room.id) as tx:
                if tx is None:
                    raise not_found(room.id)
                await self._add_pair(tx, user_id, pair, outbox)
        await self._flush(outbox)
        return await self.get_room(user_id, room.id), created

    async def _add_pair(
        self, tx: RoomTx, actor: str, pair: tuple[str, str], outbox: Outbox
    ) -> None:
        """Put whichever of the pair is missing (back) into their 1:1 room."""
        now = self.clock()
        for uid in pair:
            if await tx.member(uid) is None:
                action: Action = "create" if tx.room.log_seq == 0 else "join"
                await tx.add_member(uid, MEMBER, now)
                entry = await tx.append(action, actor, uid, now)
                outbox.record(entry, kind=DIRECT)
                outbox.tell(list(pair), member_event(entry, len(await tx.members())))

    async def invite(self, user_id: str, room_id: str, target: str) -> None:
        if target == user_id:
            raise ApiError(ErrorCode.INVALID, "you are in this room already")
        now = self.clock()
        async with self._as_member(user_id, room_id) as (tx, _):
            if tx.room.kind == DIRECT:
                raise ApiError(
                    ErrorCode.INVALID, "a 1:1 room takes no one else: create a group room"
                )
            if not await self.social.are_friends(
                user_id, target
            ) or await self.social.block_between(user_id, target):
                raise ApiError(
                    ErrorCode.FORBIDDEN,
                    f"you can invite only your friends, and {target!r} is not one",
                )
            if await tx.member(target) is not None:
                raise ApiError(ErrorCode.CONFLICT, f"{target!r} is a member already")
            if await tx.invite(target) is not None:
                raise ApiError(ErrorCode.CONFLICT, f"{target!r} is invited already")
            await tx.add_invite(target, user_id, now)
            entry = await tx.append("invite", user_id, target, now)
            members = ids(await tx.members())
            invite = {"type": "room_invite", "room": room_id, "name": tx.room.name, "by": user_id}
        outbox = Outbox()
        outbox.record(entry)
        outbox.tell(members, member_event(entry, len(members)))
        outbox.tell([target], invite | {"log_seq": entry.seq})
        await self._flush(outbox)

    async def join(self, user_id: str, room_id: str) -> schemas.RoomOut:
        """Accept an invite: the invite is what makes the room visible before joining."""
        now = self.clock()
        async with self.store.locked(room_id) as tx:
            if tx is None or not await tx.delete_invite(user_id):
                raise ApiError(ErrorCode.NOT_FOUND, f"you have no invite to room {room_id!r}")
            await tx.add_member(user_id, MEMBER, now)
            entry = await tx.append("join", user_id, user_id, now)
            members = ids(await tx.members())
        outbox = Outbox()
        outbox.record(entry)
        outbox.tell(members, member_event(entry, len(members)))
        await self._flush(outbox)
        return await self.get_room(user_id, room_id)

    async def decline(self, user_id: str, room_id: str) -> None:
        async with self.store.locked(room_id) as tx:
            if tx is None or not await tx.delete_invite(user_id):
                raise ApiError(ErrorCode.NOT_FOUND, f"you have no invite to room {room_id!r}")
            members = ids(await tx.members())
        self.events.emit("room", room_id, action="decline", actor=user_id)
        await self.notices.send(
            [*members, user_id],
            {"type": "invite_event", "room": room_id, "action": "decline", "user": user_id},
        )

    async def leave(self, user_id: str, room_id: str, confirm: bool) -> None:
        if not confirm:
            raise ApiError(
                ErrorCode.INVALID, "leaving a room cannot be undone: send confirm: true to go ahead"
            )
        outbox = Outbox()
        async with self._as_member(user_id, room_id) as (tx, _):
            await self._remove(tx, "leave", user_id, user_id, outbox)
        await self._flush(outbox)

    async def kick(self, user_id: str, room_id: str, target: str) -> None:
        if target == user_id:
            raise ApiError(ErrorCode.INVALID, "to leave a room yourself, use leave")
        outbox = Outbox()
        async with self._as_member(user_id, room_id) as (tx, me):
            if tx.room.kind == DIRECT:
                raise ApiError(ErrorCode.INVALID, "no one can be removed from a 1:1 room")
            if me.role != ADMIN:
                raise ApiError(ErrorCode.FORBIDDEN, "only an admin of the room can remove members")
            them = await tx.member(target)
            if them is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"{target!r} is not a member of this room")
            if them.role == ADMIN and not await self._is_owner(tx, me):
                raise ApiError(ErrorCode.FORBIDDEN, "only the room's creator can remove an admin")
            await self._remove(tx, "kick", user_id, target, outbox)
        await self._flush(outbox)

    async def leave_direct(self, user_id: str, other: str) -> None:
        """Leave the pair's 1:1 room if in it (blocking ``other``: nothing more reaches us)."""
        room = await self.store.direct_room(direct_key(user_id, other))
        if room is None:
            return
        outbox = Outbox()
        async with self.store.locked(room.id) as tx:
            if tx is not None and await tx.member(user_id) is not None:
                await self._remove(tx, "leave", user_id, user_id, outbox)
        await self._flush(outbox)

    async def _remove(
        self, tx: RoomTx, action: Action, actor: str, target: str, outbox: Outbox
    ) -> None:
        """Take ``target`` out and tell everyone who was in, the removed member included
        (it is the last thing the removed member hears of the room).

        A group left without members is deleted; one left without an admin gets its
        longest-standing member as admin."""
        now, before = self.clock(), ids(await tx.members())
        await tx.remove_member(target)
        entry = await tx.append(action, actor, target, now)
        remaining = await tx.members()
        outbox.record(entry)
        outbox.tell(before, member_event(entry, len(remaining)))
        if tx.room.kind != GROUP:
            return
        if not remaining:
            invitees = await tx.invitees()
            entry = await tx.append("delete", actor, None, now)
            await tx.mark_deleted(now)
            outbox.record(entry, reason="empty")
            outbox.tell(
                invitees, {"type": "room_deleted", "room": tx.room.id, "log_seq": entry.seq}
            )
        elif all(m.role != ADMIN for m in remaining):
            heir = remaining[0].user_id
            await tx.set_role(heir, ADMIN)
            entry = await tx.append("role", actor, heir, now, role=ADMIN)
            outbox.record(entry, role=ADMIN, reason="no_admin_left")
            outbox.tell(ids(remaining), member_event(entry, len(remaining)))

    async def _is_owner(self, tx: RoomTx, me: Member) -> bool:
        """The creator owns a room; once the creator is gone (left, or deleted their
        account), every admin does. A creator who comes back as a plain member does not."""
        creator = tx.room.creator_id
        if me.role != ADMIN:
            return False
        return creator in (me.user_id, None) or await tx.member(creator) is None

    async def set_role(self, user_id: str, room_id: str, body: schemas.RoleIn) -> None:
        async with self._as_member(user_id, room_id) as (tx, me):
            if tx.room.kind == DIRECT:
                raise ApiError(ErrorCode.INVALID, "a 1:1 room has no admins")
            them = await tx.member(body.user)
            if them is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"{body.user!r} is not a member of this room")
            if me.role != ADMIN:
                raise ApiError(ErrorCode.FORBIDDEN, "only an admin of the room can change roles")
            if them.role == body.role:
                raise ApiError(ErrorCode.CONFLICT, f"{body.user!r} is {body.role} already")
            if body.role == MEMBER:
                if body.user == tx.room.creator_id:
                    raise ApiError(ErrorCode.FORBIDDEN, "the room's creator is always an admin")
                if body.user != user_id and not await self._is_owner(tx, me):
                    raise ApiError(
                        ErrorCode.FORBIDDEN, "only the room's creator can demote an admin"
                    )
                if all(m.role != ADMIN for m in await tx.members() if m.user_id != body.user):
                    raise ApiError(
                        ErrorCode.CONFLICT, "a room needs an admin: make someone else admin first"
                    )
            await tx.set_role(body.user, body.role)
            entry = await tx.append("role", user_id, body.user, self.clock(), role=body.role)
            members = ids(await tx.members())
        outbox = Outbox()
        outbox.record(entry, role=body.role)
        outbox.tell(members, member_event(entry, len(members)))
        await self._flush(outbox)

    async def delete(self, user_id: str, room_id: str, confirm: bool) -> None:
        if not confirm:
            raise ApiError(
                ErrorCode.INVALID,
                "deleting a room cannot be undone: send confirm: true to go ahead",
            )
        now = self.clock()
        async with self._as_member(user_id, room_id) as (tx, me):
            if tx.room.kind == DIRECT:
                raise ApiError(ErrorCode.INVALID, "a 1:1 room cannot be deleted: leave it instead")
            if not await self._is_owner(tx, me):
                raise ApiError(ErrorCode.FORBIDDEN, "only the room's creator can delete it")
            told = ids(await tx.members()) + await tx.invitees()
            entry = await tx.append("delete", user_id, None, now)
            await tx.mark_deleted(now)
        outbox = Outbox()
        outbox.record(entry)
        outbox.tell(
            told, {"type": "room_deleted", "room": room_id, "by": user_id, "log_seq": entry.seq}
        )
        await self._flush(outbox)
