"""Signing the membership log: each change is signed by the device of the member who made it.

The server cannot be trusted with membership (it could add a listener), so every client
replays a room's log and believes only entries signed by an authorised member's device
(``tui/crypto``). The server's part is small: it stores a signature only from the entry's
actor, only once, and only if it verifies against that actor's registered device key — so a
garbage signature is refused here with a clear error instead of confusing every client later.
Members connected now hear ``log_signed`` and re-check the room.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.chat import schemas
from backend.chat.notifier import Notices
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode
from backend.protocol.signing import membership_payload, verify_signature
from backend.stores.relational.schema import devices, membership_log, room_members


class LogSignatures:
    def __init__(self, engine: AsyncEngine, notices: Notices) -> None:
        self._engine = engine
        self._notices = notices

    async def sign(
        self, user: str, room_id: str, body: schemas.SignaturesIn
    ) -> schemas.SignaturesOut:
        """Attach the caller's signatures to entries the caller made (all or none)."""
        signed: list[int] = []
        fresh: list[int] = []
        async with self._engine.begin() as conn:
            # Only someone who made a change in this room may learn that it exists.
            mine = select(membership_log.c.seq).where(
                membership_log.c.room_id == room_id, membership_log.c.actor_id == user
            )
            if await conn.scalar(mine.limit(1)) is None:
                raise _not_found(room_id)
            keys = dict(
                (
                    await conn.execute(
                        select(devices.c.device_id, devices.c.ed25519).where(
                            devices.c.user_id == user
                        )
                    )
                ).all()
            )
            for item in body.signatures:
                entry = (
                    await conn.execute(
                        select(membership_log).where(
                            membership_log.c.room_id == room_id, membership_log.c.seq == item.seq
                        )
                    )
                ).first()
                if entry is None:
                    raise ApiError(ErrorCode.NOT_FOUND, f"no log entry {item.seq} in this room")
                if entry.actor_id != user:
                    raise ApiError(
                        ErrorCode.FORBIDDEN,
                        f"entry {item.seq} was made by someone else: only they can sign it",
                    )
                if item.device not in keys:
                    raise ApiError(
                        ErrorCode.NOT_FOUND,
                        f"unknown device {item.device!r}: register it at /auth/devices first",
                    )
                payload = membership_payload(
                    room_id,
                    item.seq,
                    entry.action,
                    entry.actor_id,
                    entry.target_id,
                    entry.role,
                    item.device,
                )
                if not verify_signature(keys[item.device], item.signature, payload):
                    raise ApiError(
                        ErrorCode.BAD_SIGNATURE,
                        f"entry {item.seq}: the signature does not verify with device "
                        f"{item.device!r}; sign membership_payload(...) of that entry",
                    )
                if entry.signature is not None:
                    if (entry.device_id, entry.signature) != (item.device, item.signature):
                        raise ApiError(ErrorCode.CONFLICT, f"entry {item.seq} is signed already")
                    signed.append(item.seq)
                    continue
                await conn.execute(
                    update(membership_log)
                    .where(
                        membership_log.c.room_id == room_id,
                        membership_log.c.seq == item.seq,
                        membership_log.c.signature.is_(None),
                    )
                    .values(device_id=item.device, signature=item.signature)
                )
                signed.append(item.seq)
                fresh.append(item.seq)
            members = list(
                await conn.scalars(
                    select(room_members.c.user_id).where(room_members.c.room_id == room_id)
                )
            )
        if fresh:
            await self._notices.send(
                members, {"type": "log_signed", "room": room_id, "seqs": sorted(fresh)}
            )
        return schemas.SignaturesOut(room=room_id, signed=sorted(set(signed)))


def _not_found(room_id: str) -> ApiError:
    return ApiError(ErrorCode.NOT_FOUND, f"no room {room_id!r} with changes of yours: check the id")
