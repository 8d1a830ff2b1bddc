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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from backend.chat.gateway.auth_phase import device_registered
from backend.chat.gateway.commands import Reply, command
from backend.chat.history import message_wire
from backend.chat.read_markers import ReadMarkers
from backend.chat.social import SocialService
from backend.common.auth_guard import SESSION_ENDED_CHANNEL
from backend.common.errors import ApiError
from backend.protocol.codec import encode
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import (
    MAX_SAFE_INT,
    AckToDevice,
    Message,
    Read,
    ReadEvent,
    Resync,
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
from backend.stores.ephemeral.port import Doorbell, Ring
from backend.stores.ephemeral.port import Resync as DoorbellResync

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from backend.chat.gateway.connection import Connection
    from backend.chat.gateway.registry import Registry

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


#: Doorbell channel for "a to-device message is queued": the node holding the device pushes it.
TO_DEVICE_CHANNEL = "to_device"
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


RECOVERY_FIRST_DELAY = 0.2
RECOVERY_MAX_DELAY = 5.0
"""Pauses between retries of a ring that could not be pushed (doubling up to this)."""
PUSH_FAILED_REASON = "live delivery failed: a store was unreachable"


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
        self.push_failures = 0
        """Rings that could not be pushed when they came (their members could not be read)."""
        self._recovery: asyncio.Task[None] | None = None
        self.latency: Histogram | None = None
        """When set, observes intake timestamp -> push on this node for every message."""

    async def _run(self) -> None:
        async for item in self._doorbell.subscribe(*self._channels):
            if isinstance(item, DoorbellResync):
                self.resyncs += 1
                # Rings may have been missed: every client here fills its gaps from history.
                self._gateway.push_all(Resync(reason=item.reason))
                continue
            try:
                await self._dispatch(item)
            except Exception as exc:
                # A ring that cannot be pushed now (the members cannot be read: MariaDB is
                # down) must not end the loop: that would stop every push of this node until
                # a restart while its health stayed green. The ring is retried in the
                # background; when it gets through, every client here is told to resync.
                self.push_failures += 1
                log.warning(
                    "could not push a committed message; retrying",
                    extra={"channel": item.channel, "error": type(exc).__name__},
                )
                if self._recovery is None or self._recovery.done():
                    self._recovery = asyncio.create_task(
                        self._recover(item), name="chat-fanout-recovery"
                    )

    async def _dispatch(self, item: Ring) -> None:
        if item.channel == SESSION_ENDED_CHANNEL:
            await self._gateway.close_session(item.payload.decode(errors="replace"))
        elif item.channel == TO_DEVICE_CHANNEL:
            self._deliver_to_device(item)
        else:
            await self._deliver(item)

    async def _recover(self, item: Ring) -> None:
        """Retry ``item`` until it gets through, then tell every client here to resync: the
        rings that failed meanwhile were not pushed, and history has them all."""
        delay = RECOVERY_FIRST_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                await self._dispatch(item)
            except Exception as exc:
                log.warning(
                    "pushing still fails; retrying",
                    extra={"channel": item.channel, "error": type(exc).__name__},
                )
                delay = min(delay * 2, RECOVERY_MAX_DELAY)
                continue
            self.resyncs += 1
            self._gateway.push_all(Resync(reason=PUSH_FAILED_REASON))
            log.info("pushing works again; clients told to resync")
            return

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
        if self.latency is not None:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                ts = datetime.fromisoformat(str(data["ts"]).replace("Z", "+00:00"))
                self.latency.observe(max(0.0, time.time() - ts.timestamp()))

    def _deliver_to_device(self, ring: Ring) -> None:
        try:
            data = json.loads(ring.payload)
            frame = ToDevice.model_validate(data["frame"])
            self._gateway.push_to_device(data["user"], data["device"], frame)
        except (ValueError, KeyError, TypeError):
            log.error("malformed to-device ring ignored")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Fanout]:
        task = asyncio.create_task(self._run(), name="chat-fanout")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._recovery is not None:
                self._recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._recovery


def encode_message(ring: dict[str, object]) -> str:
    """The ``message`` frame for a committed ring, encoded once for every recipient."""
    fields = {k: v for k, v in ring.items() if k != "type"}
    return encode(Message.model_validate(fields))
