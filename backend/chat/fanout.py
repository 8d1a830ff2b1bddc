"""The fan-out: push every committed message rung on the doorbell to its room's members here.

Rings are handled in batches: the doorbell subscription keeps up to ``backlog`` of them
waiting (its adapter reads them in a task of its own); the pusher takes everything waiting
(up to ``batch``), looks up the members of all the batch's rooms at once, then pushes in ring
order, each message's WebSocket frame built once for all its recipients. The lookup answers
from the member cache (``member_cache.py``), which this subscription feeds: a membership
change rings ``changing`` before its commit, so it comes before the ring of any message
committed after it, and the room is read from the store from then until its ``changed``. A
member removed before a message's commit gets nothing ("Membership at push time",
docs/protocol.md).
Under load batches grow, and the cost per message of the lookup shrinks instead of the
backlog overflowing into a resync.

The doorbell is not the record: when the backlog overflows, every client here is told to
``resync`` and fills its gaps from history. When the members cannot be read (MariaDB down),
the batch is not pushed; the lookup is retried in the background with backoff, and once it
works again every client here is told to resync (a resync during the outage would only send
every client to a history that fails the same way). The fan-out itself never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeGuard

from pydantic import ConfigDict

from backend.chat.gateway.wire import text_frame, utf8_frame
from backend.chat.member_cache import MEMBERSHIP_CHANNEL, MemberCache
from backend.common.auth_guard import SESSION_ENDED_CHANNEL
from backend.common.tasks import stop_if_cancelled
from backend.protocol.codec import encode_flat
from backend.protocol.frames import Message, Resync, ToDevice
from backend.stores.ephemeral.port import Doorbell, Ring
from backend.stores.ephemeral.port import Resync as DoorbellResync

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from backend.chat.gateway.registry import Registry

log = logging.getLogger("sealchat.fanout")

#: Doorbell channel for "a to-device message is queued": the node holding the device pushes it.
TO_DEVICE_CHANNEL = "to_device"
BATCH = 512
"""Rings handled per member lookup at most."""
BACKLOG = 10_000
"""Rings waiting here at most; past that the backlog is traded for a resync of every client.
About half a second of pushing at full speed (rings are ~0.5 KB: ~5 MB at most): an archiver
catching up rings in bursts, and a resync makes every client ask for history at once."""
RECOVERY_FIRST_DELAY = 0.2
RECOVERY_MAX_DELAY = 5.0
"""Pauses between retries of a member lookup that failed (doubling up to this)."""
PUSH_FAILED_REASON = "live delivery failed: a store was unreachable"


@dataclass(frozen=True, slots=True)
class _Committed:
    """A parsed commit ring: its room, its WebSocket frame built once, the intake timestamp."""

    room: str
    frame: bytes
    ts: datetime


class _RingMessage(Message):
    """A ``message`` frame with nothing but a message's fields: once an archiver's compact
    ring validates as one, its bytes are the frame the members get, as they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Fanout:
    """Pushes every committed message rung on the doorbell to its room's members here."""

    def __init__(
        self,
        doorbell: Doorbell,
        channels: list[str],
        members: MemberCache,
        gateway: Registry,
        *,
        batch: int = BATCH,
        backlog: int = BACKLOG,
    ) -> None:
        if batch < 1:
            raise ValueError("a batch holds at least one ring")
        self._doorbell = doorbell
        self._channels = channels
        self._members = members
        self._gateway = gateway
        self._batch = batch
        self._backlog = backlog
        self.delivered = 0
        self.resyncs = 0
        self.batches = 0
        self.push_failures = 0
        """Messages not pushed live because their members could not be read."""
        self._recovery: asyncio.Task[None] | None = None
        self.latency: Histogram | None = None
        """When set, observes intake timestamp -> push on this node for every message."""

    async def _run(self) -> None:
        subscription = self._doorbell.subscribe(*self._channels, backlog=self._backlog)
        try:
            async for first in subscription:
                await self._handle([first, *subscription.ready(self._batch - 1)])
                stop_if_cancelled()
        finally:
            self._members.stopped()
            await subscription.aclose()

    async def _handle(self, batch: list[Ring | DoorbellResync]) -> None:
        """Handle ``batch`` in order, with one member lookup for all its messages. The member
        cache takes in the batch's membership rings first: the lookup answers as of the last
        of them, later than every commit in the batch ("membership at push time")."""
        self.batches += 1
        for item in batch:
            if isinstance(item, DoorbellResync) or item.channel in _FOR_THE_CACHE:
                self._members.follow(item)
        committed = {id(item): _parse(item) for item in batch if _is_commit(item)}
        rooms = {c.room for c in committed.values() if c is not None}
        members: Mapping[str, Collection[str]] = {}
        if rooms:
            try:
                members = await self._members.members_of_rooms(rooms)
            except Exception as exc:
                # No traceback: a database error's text can quote the statement's parameters.
                log.warning(
                    "cannot read room members; retrying, then clients resync",
                    extra={"error": type(exc).__name__},
                )
                self.push_failures += sum(1 for c in committed.values() if c is not None)
                self._recover_later(rooms)
                committed = {}
        for item in batch:
            if isinstance(item, DoorbellResync):
                # Rings may have been missed: every client here fills its gaps from history.
                self._resync(item.reason)
            elif item.channel == SESSION_ENDED_CHANNEL:
                await self._gateway.close_session(item.payload.decode(errors="replace"))
            elif item.channel == TO_DEVICE_CHANNEL:
                self._deliver_to_device(item)
            elif (message := committed.get(id(item))) is not None:
                self._push(message, members.get(message.room, ()))

    def _recover_later(self, rooms: set[str]) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(rooms), name="chat-fanout-recovery")

    async def _recover(self, rooms: set[str]) -> None:
        """Retry the member lookup until it works, then tell every client here to resync:
        what failed meanwhile was not pushed, and history has it all."""
        delay = RECOVERY_FIRST_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                await self._members.members_of_rooms(rooms)
            except Exception as exc:
                log.warning("room members still unreadable", extra={"error": type(exc).__name__})
                delay = min(delay * 2, RECOVERY_MAX_DELAY)
                continue
            self._resync(PUSH_FAILED_REASON)
            log.info("room members readable again; clients told to resync")
            return

    def _resync(self, reason: str) -> None:
        self.resyncs += 1
        self._gateway.push_all(Resync(reason=reason))

    def _push(self, message: _Committed, members: Collection[str]) -> None:
        self.delivered += self._gateway.push_frame(members, message.frame)
        if self.latency is not None:
            self.latency.observe(max(0.0, time.time() - message.ts.timestamp()))

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
            for running in (task, self._recovery):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running


_FOR_THE_CACHE = (MEMBERSHIP_CHANNEL, SESSION_ENDED_CHANNEL)
_NOT_COMMITS = (SESSION_ENDED_CHANNEL, TO_DEVICE_CHANNEL, MEMBERSHIP_CHANNEL)


def _is_commit(item: Ring | DoorbellResync) -> TypeGuard[Ring]:
    return isinstance(item, Ring) and item.channel not in _NOT_COMMITS


_COMMITTED = b'{"type":"committed",'
_AS_MESSAGE = b'{"type":"message",'


def _parse(ring: Ring) -> _Committed | None:
    """Validate a commit ring as a ``message`` frame and build its WebSocket frame, both once
    per ring on every chat node. The archiver's compact rings take pydantic's JSON path (no
    dict in between) and, valid, go out as they came, type aside: JSON that pydantic parsed
    (so UTF-8) with only a message's fields, each well-formed. Anything else (a field this
    version does not know, say) takes the general path and is encoded anew."""
    payload = ring.payload
    if payload.startswith(_COMMITTED):
        text = _AS_MESSAGE + payload[len(_COMMITTED) :]
        try:
            fast = _RingMessage.model_validate_json(text)
        except ValueError:
            pass
        else:
            return _Committed(room=fast.room, frame=utf8_frame(text), ts=fast.ts)
    try:
        data = json.loads(payload)
        message = Message.model_validate({k: v for k, v in data.items() if k != "type"})
        return _Committed(room=message.room, frame=text_frame(encode_flat(message)), ts=message.ts)
    except (ValueError, KeyError, TypeError, AttributeError):
        log.error("malformed doorbell ring ignored", extra={"channel": ring.channel})
        return None
