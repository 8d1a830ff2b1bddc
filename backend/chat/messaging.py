"""Room messages over the WebSocket: send, sync, history, typing and read markers, and the
fan-out that pushes committed messages to the members connected to this node.

The order of events is DESIGN.md's data path: ``send`` is answered only after the queue
confirmed the envelope; the archiver stores it and rings the doorbell; ``Fanout`` (on every
chat node) pushes the committed message to the room's members connected here. The doorbell
is never the record: a ``Resync`` from it tells every client to fill gaps from history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from backend.chat.gateway.commands import Reply, command
from backend.chat.history import message_wire
from backend.chat.social import SocialService
from backend.common.errors import ApiError
from backend.protocol.codec import encode
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import (
    MAX_SAFE_INT,
    Read,
    ReadEvent,
    Resync,
    Send,
    Sync,
    Typing,
    TypingEvent,
)
from backend.protocol.frames import (
    History as HistoryFrame,
)
from backend.stores.ephemeral.port import Doorbell, Ring
from backend.stores.ephemeral.port import Resync as DoorbellResync

if TYPE_CHECKING:
    from backend.chat.gateway.connection import Connection
    from backend.chat.gateway.registry import Registry

log = logging.getLogger("sealchat.messaging")


async def _require_member(social: SocialService, room: str, user: str) -> None:
    if not await social.is_member(room, user):
        # The same answer whether the room exists or not.
        raise ApiError(ErrorCode.NOT_FOUND, "no such room among yours")


@command(Send)
async def send(conn: Connection, frame: Send) -> Reply:
    """Durable before acknowledged: the result comes only after the queue's confirm."""
    principal = conn.principal
    if principal.device is None:
        raise ApiError(
            ErrorCode.INVALID,
            "sending needs a device: authenticate with the device id registered at /auth/devices",
        )
    intake = conn.runtime.intake
    envelope = intake.envelope(
        msg_id=frame.msg_id,
        room=frame.room,
        sender=principal.user,
        device=principal.device,
        ciphertext=frame.ciphertext,
        kind=frame.kind,
    )
    await intake.accept(envelope)
    return {"msg_id": frame.msg_id, "accepted": True}


@command(Sync)
async def sync(conn: Connection, frame: Sync) -> Reply:
    """The last seq of each of the caller's rooms: fill anything above your own from history."""
    runtime = conn.runtime
    mine = set(await runtime.social.rooms_of(conn.principal.user))
    rooms = mine if frame.rooms is None else [r for r in frame.rooms if r in mine]
    return {"rooms": await runtime.history.latest(sorted(rooms))}


@command(HistoryFrame)
async def history(conn: Connection, frame: HistoryFrame) -> Reply:
    runtime = conn.runtime
    await _require_member(runtime.social, frame.room, conn.principal.user)
    pages = runtime.history
    if frame.after is not None:
        messages = await pages.after(frame.room, frame.after, frame.limit)
    else:
        before = frame.before if frame.before is not None else MAX_SAFE_INT
        messages = await pages.before(frame.room, before, frame.limit)
    return {"room": frame.room, "messages": [message_wire(m) for m in messages]}


@command(Typing)
async def typing(conn: Connection, frame: Typing) -> Reply:
    """Ephemeral: pushed to the other members connected here, never stored."""
    runtime = conn.runtime
    await _require_member(runtime.social, frame.room, conn.principal.user)
    event = TypingEvent(room=frame.room, user=conn.principal.user, active=frame.active)
    runtime.gateway.push(await runtime.social.members(frame.room), event, exclude=conn)
    return {}


@command(Read)
async def read(conn: Connection, frame: Read) -> Reply:
    runtime = conn.runtime
    await _require_member(runtime.social, frame.room, conn.principal.user)
    event = ReadEvent(room=frame.room, user=conn.principal.user, seq=frame.seq)
    runtime.gateway.push(await runtime.social.members(frame.room), event, exclude=conn)
    return {}


class Fanout:
    """Pushes every committed message rung on the doorbell to its room's members here."""

    def __init__(
        self, doorbell: Doorbell, channels: list[str], social: SocialService, gateway: Registry
    ) -> None:
        self._doorbell = doorbell
        self._channels = channels
        self._social = social
        self._gateway = gateway
        self.delivered = 0
        self.resyncs = 0

    async def _run(self) -> None:
        async for item in self._doorbell.subscribe(*self._channels):
            if isinstance(item, DoorbellResync):
                self.resyncs += 1
                # Rings may have been missed: every client here fills its gaps from history.
                self._gateway.push_all(Resync(reason=item.reason))
                continue
            await self._deliver(item)

    async def _deliver(self, ring: Ring) -> None:
        try:
            data = json.loads(ring.payload)
            room = data["room"]
            text = encode_message(data)
        except (ValueError, KeyError, TypeError):
            log.error("malformed doorbell ring ignored", extra={"channel": ring.channel})
            return
        # Members are read at push time, so a member removed before the commit gets nothing.
        self.delivered += self._gateway.push_text(await self._social.members(room), text)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Fanout]:
        task = asyncio.create_task(self._run(), name="chat-fanout")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def encode_message(ring: dict[str, object]) -> str:
    """The ``message`` frame for a committed ring, encoded once for every recipient."""
    from backend.protocol.frames import Message

    fields = {k: v for k, v in ring.items() if k != "type"}
    return encode(Message.model_validate(fields))
