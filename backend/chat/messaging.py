"""Room messages over the WebSocket: send, sync, history, typing and read markers, and the
fan-out that pushes committed messages to the members connected to this node.

The order of events is DESIGN.md's data path: ``send`` is answered only after the queue
confirmed the envelope; the archiver stores it and rings the doorbell; ``Fanout`` (on every
chat node) pushes the committed message to the room's members connected here. The doorbell
is never the record: a ``Resync`` from it tells every client to fill gaps from history.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from backend.chat.fanout import TO_DEVICE_CHANNEL
from backend.chat.gateway.auth_phase import device_registered
from backend.chat.gateway.commands import Reply, command
from backend.chat.history import message_wire
from backend.chat.read_markers import ReadMarkers
from backend.chat.social import SocialService
from backend.common.errors import ApiError
from backend.protocol.codec import encode
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import (
    MAX_SAFE_INT,
    AckToDevice,
    Read,
    ReadEvent,
    Send,
    SendToDevice,
    Sync,
    ToDevice,
    Typing,
    TypingEvent,
)
from backend.protocol.frames import (
    History as HistoryFrame,
)
from backend.stores.documents.port import DocumentStore
from backend.stores.documents.port import ToDevice as StoredToDevice

if TYPE_CHECKING:
    from backend.chat.gateway.connection import Connection

log = logging.getLogger("sealchat.messaging")


async def _require_member(social: SocialService, room: str, user: str) -> None:
    if not await social.is_member(room, user):
        # The same answer whether the room exists or not.
        raise ApiError(ErrorCode.NOT_MEMBER, "no such room among yours")


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
        ttl=frame.ttl,
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
    """Ephemeral: pushed to the other members connected here, never stored, and throttled
    (``typing_throttle.py``); ``sent`` says whether this one went out."""
    runtime = conn.runtime
    user = conn.principal.user
    await _require_member(runtime.social, frame.room, user)
    if not runtime.typing.allow(user, frame.room, frame.active):
        return {"sent": False}
    event = TypingEvent(room=frame.room, user=user, active=frame.active)
    runtime.gateway.push(await runtime.social.members(frame.room), event, exclude=conn)
    return {"sent": True}


@command(Read)
async def read(conn: Connection, frame: Read) -> Reply:
    """Persist the caller's read marker (forward only, at most the room's newest seq) and
    tell the other members when it moved; ``seq`` in the result is the marker now."""
    runtime = conn.runtime
    user = conn.principal.user
    await _require_member(runtime.social, frame.room, user)
    latest = (await runtime.history.latest([frame.room]))[frame.room]
    seq = min(frame.seq, latest)
    markers = ReadMarkers(runtime.stores.engine)
    if seq > 0 and await markers.advance(frame.room, user, seq):
        event = ReadEvent(room=frame.room, user=user, seq=seq)
        runtime.gateway.push(await runtime.social.members(frame.room), event, exclude=conn)
    return {"room": frame.room, "seq": await markers.marker(frame.room, user)}


PENDING_ON_CONNECT = 100


@command(SendToDevice)
async def send_to_device(conn: Connection, frame: SendToDevice) -> Reply:
    """Queue an Olm message for one device; stored until that device acks it."""
    runtime = conn.runtime
    sender = conn.principal
    if sender.device is None:
        raise ApiError(
            ErrorCode.INVALID,
            "to-device messages need a device: authenticate with your registered device id",
        )
    if not await device_registered(runtime.stores.engine, frame.user, frame.device):
        raise ApiError(ErrorCode.NOT_FOUND, "no such device: query /auth/keys/query for devices")
    if await runtime.social.blocked_between(sender.user, frame.user):
        raise ApiError(ErrorCode.FORBIDDEN, "you cannot message this user")
    documents = runtime.stores.documents
    assert documents is not None  # the chat service runs with the document store
    message = StoredToDevice(
        id=frame.msg_id,
        recipient_user=frame.user,
        recipient_device=frame.device,
        sender_user=sender.user,
        sender_device=sender.device,
        ts=datetime.now(UTC),
        ciphertext=frame.ciphertext,
    )
    if await documents.put_to_device(message):
        ring = {
            "user": frame.user,
            "device": frame.device,
            "frame": to_device_frame(message).model_dump(mode="json"),
        }
        # Best effort: the record is stored; a missed ring is delivered on the next connect.
        with contextlib.suppress(Exception):
            await runtime.stores.doorbell.ring(TO_DEVICE_CHANNEL, json.dumps(ring).encode())
    return {"id": frame.msg_id, "queued": True}


@command(AckToDevice)
async def ack_to_device(conn: Connection, frame: AckToDevice) -> Reply:
    """The device stored these messages: only its own queue is touched."""
    principal = conn.principal
    if principal.device is None:
        raise ApiError(ErrorCode.INVALID, "acknowledging needs the device you authenticated with")
    documents = conn.runtime.stores.documents
    assert documents is not None
    acked = await documents.ack_to_device(principal.user, principal.device, frame.ids)
    return {"acked": acked}


def to_device_frame(message: StoredToDevice) -> ToDevice:
    return ToDevice(
        id=message.id,
        sender=message.sender_user,
        sender_device=message.sender_device,
        ts=message.ts,
        ciphertext=message.ciphertext,
    )


def pending_on_connect(documents: DocumentStore) -> Callable[[Connection], Awaitable[None]]:
    """Hand a device what was queued for it while it was away (it acks what it stored)."""

    async def hook(conn: Connection) -> None:
        user, device = conn.principal.user, conn.principal.device
        if device is None:
            return
        for message in await documents.pending_to_device(user, device, PENDING_ON_CONNECT):
            conn.enqueue(encode(to_device_frame(message)))

    return hook
