"""End-to-end encryption glue: the ``tui.crypto`` engine wired to the client's I/O.

The engine is sans-I/O; this module does its I/O in the order that makes it safe:
- before a room message: fetch the members' devices (auth key directory), verify the room's
  signed membership log, claim one-time keys for missing Olm sessions, ``encrypt_room``, then
  send every queued to-device message (the key shares) *before* the room message itself;
- membership changes this device makes are announced to the engine first
  (``expect_membership``) and signed after (``POST .../membership/signatures``), so a change the
  server invents is never signed;
- to-device messages are decrypted (and stored by the engine) before they are acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from backend.protocol.errors import ErrorCode
from backend.protocol.frames import EXPIRED_KIND, MemberEvent, Message, ToDevice
from tui.client.api import Api
from tui.client.backoff import Backoff
from tui.client.errors import ApiError, ClientError
from tui.client.events import (
    ClientEvent,
    IdentityWarning,
    MemberChanged,
    MessageExpired,
    MessageShown,
    MessageUndecryptable,
    RoomVerified,
    SecurityAlert,
    VerificationUpdate,
)
from tui.crypto import (
    Decrypted,
    DeviceRef,
    Engine,
    IdentityChange,
    Membership,
    NoSession,
    RoomKeyReceived,
    SasUpdate,
    SessionRecovered,
    ToDeviceFailed,
    Undecryptable,
    is_expired,
)

log = logging.getLogger("sealchat.client")

#: How long a room's device list is trusted before it is fetched again (member events and
#: ``log_signed`` drop it at once).
DEVICES_TTL = 30.0
#: At most one extra membership check per room this often for senders we do not know.
RECHECK_SECONDS = 2.0
TS_MEMORY = 10_000
#: ``rate_limited`` on a to-device send: wait at least BASE, plus a jittered backoff up to CAP
#: seconds; give up (raise) after this many refusals of one message in a row.
RATE_LIMIT_BASE = 0.25
RATE_LIMIT_CAP = 8.0
RATE_LIMIT_TRIES = 8


class E2ee:
    """The product ``RoomCipher`` (see ``tui/client/cipher.py``)."""

    def __init__(self, engine: Engine, api: Api, request: Any, emit: Any) -> None:
        self.engine = engine
        self.api = api
        self._request = request
        self._emit = emit
        self._fresh: dict[str, float] = {}
        self._alerted: set[tuple[str, int]] = set()
        self._kinds: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sent_at: dict[tuple[str, int], datetime] = {}
        """When messages were sent, for those shown later (when their key arrives)."""
        self.rate_limited = 0
        """To-device sends the server refused with ``rate_limited`` (and were sent again)."""

    # --- device setup ------------------------------------------------------------------------
    async def register_device(self, display_name: str = "sealchat") -> None:
        """Register this device's identity keys and publish one-time keys (new profiles)."""
        await self.api.register_device(self.engine.device_registration(display_name))
        await self.top_up_keys(0)

    async def top_up_keys(self, unclaimed: int | None = None) -> None:
        if unclaimed is None:
            unclaimed = await self.api.key_count(self.engine.device_id)
        body = self.engine.one_time_keys_upload(unclaimed)
        if body is not None:
            await self.api.upload_keys(body)
            self.engine.mark_keys_published()

    # --- RoomCipher --------------------------------------------------------------------------
    async def on_online(self) -> None:
        await self.top_up_keys()
        await self.flush_to_device()

    async def flush_to_device(self) -> None:
        """Send everything the engine queued, oldest first, and mark it sent.

        ``rate_limited`` is waited out (exponential backoff with jitter, up to
        ``RATE_LIMIT_TRIES`` refusals in a row): a room key share to many devices is a burst
        of frames, and the gateway cuts off a socket that keeps sending into a full bucket."""
        sent: list[str] = []
        try:
            for out in self.engine.pending_to_device():
                backoff = Backoff(RATE_LIMIT_BASE, RATE_LIMIT_CAP)
                while True:
                    try:
                        await self._request(
                            "send_to_device",
                            user=out.user,
                            device=out.device,
                            msg_id=out.msg_id,
                            ciphertext=out.ciphertext,
                        )
                    except ApiError as exc:
                        if exc.code == ErrorCode.RATE_LIMITED and backoff.attempt < (
                            RATE_LIMIT_TRIES - 1
                        ):
                            self.rate_limited += 1
                            await asyncio.sleep(RATE_LIMIT_BASE + backoff.next_delay())
                            continue
                        if exc.code not in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
                            raise
                        # The device is gone or the user blocked us: it can never be delivered.
                    break
                sent.append(out.msg_id)
        finally:
            if sent:
                self.engine.mark_to_device_sent(sent)

    async def seal(self, room: str, content: dict[str, Any]) -> str:
        await self.ensure_room(room)
        devices = self.engine.room_devices(room)
        await self.ensure_sessions(devices)
        sent = self.engine.encrypt_room(room, content)
        await self.flush_to_device()
        return sent.ciphertext

    async def open(self, message: Message) -> list[ClientEvent]:
        if message.kind == EXPIRED_KIND:
            self.engine.store.history_delete(message.room, [message.seq])
            return [MessageExpired(message.room, message.seq, message.msg_id)]
        await self._admit_sender(message.room, message.sender)
        self._sent_at[(message.room, message.seq)] = message.ts
        while len(self._sent_at) > TS_MEMORY:
            self._sent_at.pop(next(iter(self._sent_at)))
        frame = message.model_dump(mode="json")
        result = self.engine.decrypt_room(frame)
        return [self._shown(result, message.ts)]

    async def _admit_sender(self, room: str, sender: str) -> None:
        """Re-verify the room when ``sender`` is not in our view of its membership: the view
        may predate their join (this process was not running). An outsider stays out."""
        known = self.engine.membership(room)
        if known is not None and sender in known.ever:
            return
        if time.monotonic() - self._fresh.get(room, 0) < RECHECK_SECONDS:
            return
        self._fresh.pop(room, None)
        try:
            await self.ensure_room(room)
        except ApiError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise

    async def on_to_device(self, frame: ToDevice) -> list[ClientEvent]:
        effects = self.engine.decrypt_to_device(frame.model_dump(mode="json"))
        out: list[ClientEvent] = []
        for effect in effects:
            if isinstance(effect, ToDeviceFailed) and effect.reason == "unknown_device":
                await self.refresh_devices([effect.sender], force=True)
                effects.extend(self.engine.retry_to_device())
            elif isinstance(effect, ToDeviceFailed):
                log.info("to-device message failed", extra={"reason": effect.reason})
                await self.ensure_sessions([DeviceRef(effect.sender, effect.sender_device)])
            elif isinstance(effect, RoomKeyReceived):
                for result in self.engine.retry_undecryptable(effect.room):
                    out.append(self._shown(result, None))
            elif isinstance(effect, SasUpdate):
                out.append(VerificationUpdate(effect))
            elif isinstance(effect, SessionRecovered):
                log.info("a peer re-made its session with this device")
        await self.flush_to_device()
        return out

    async def on_member_event(self, frame: MemberEvent) -> list[ClientEvent]:
        return await self.membership_changed(frame.room, frame)

    async def membership_changed(
        self, room: str, frame: MemberEvent | None = None
    ) -> list[ClientEvent]:
        self._fresh.pop(room, None)
        try:
            result = await self.ensure_room(room)
        except ApiError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            result = None
        if frame is None:
            return []
        problem: str | None = None
        if result is None:
            problem = "you are no longer in this room"
        elif frame.action == "join" and frame.user not in result.members:
            problem = f"{frame.user} is not admitted by a signed entry yet: they get no keys"
        elif result.rejected:
            problem = "; ".join(f"entry {seq}: {why}" for seq, why in result.rejected)
        return [
            MemberChanged(
                frame.room,
                frame.action,
                frame.actor,
                frame.user,
                frame.member_count,
                problem is None,
                problem,
            )
        ]

    # --- membership --------------------------------------------------------------------------
    async def ensure_room(self, room: str) -> Membership:
        """The room's membership, verified against its signed log (fetched when stale).

        One check per room at a time: a check started by an event must not overwrite the
        result of one that saw a newer log (the one after this device signed)."""
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            return await self._ensure_room(room)

    async def _ensure_room(self, room: str) -> Membership:
        cached = self.engine.membership(room)
        if cached is not None and time.monotonic() - self._fresh.get(room, 0) < DEVICES_TTL:
            return cached
        if room not in self._kinds:
            self._kinds[room] = str((await self.api.room(room))["kind"])
        entries = await self.api.membership_log(room)
        users = {str(e["actor"]) for e in entries} | {
            str(e["target"]) for e in entries if e.get("target")
        }
        await self.refresh_devices(sorted(users))
        body = self.engine.sign_membership(room, entries)
        if body is not None:
            await self.api.sign_log(room, body)
            entries = await self.api.membership_log(room)
        result = self.engine.verify_membership(room, self._kinds[room], entries)
        self._emit(
            RoomVerified(
                room,
                tuple(sorted(result.members)),
                tuple(result.pending),
                tuple(result.rejected),
            )
        )
        for seq, why in result.rejected:
            if (room, seq) not in self._alerted:
                self._alerted.add((room, seq))
                self._emit(SecurityAlert(room, f"membership entry {seq} rejected: {why}"))
        self._fresh[room] = time.monotonic()
        for later in self.engine.retry_after_membership(room):
            self._emit(self._shown(later, None))
        return result

    async def refresh_devices(self, users: list[str], *, force: bool = False) -> None:
        if not users:
            return
        directory = await self.api.query_keys(users)
        for user in users:
            changes = self.engine.update_devices(user, directory.get(user, []))
            for change in changes:
                self._warn(change)

    def _warn(self, change: IdentityChange) -> None:
        if change.kind == "bad_signature":
            self._emit(SecurityAlert(None, str(change), change.user))
        elif change.held or change.kind == "key_changed":
            rooms = tuple(self.engine.rooms_shared_with(change.user))
            self._emit(IdentityWarning(change.user, str(change), rooms))

    async def ensure_sessions(self, devices: list[DeviceRef]) -> None:
        missing = self.engine.missing_sessions(devices)
        if not missing:
            return
        claimed = await self.api.claim_keys(self.engine.claim_request(missing))
        for ref in self.engine.add_claimed_keys(claimed):
            self._emit(SecurityAlert(None, f"one-time key of {ref} failed its signature", ref.user))

    def forget_room(self, room: str) -> None:
        """This user left: stop treating the cached membership as fresh."""
        self._fresh.pop(room, None)

    async def sign_own(self, room: str) -> None:
        """Sign the log entries this device made in ``room`` (and re-verify it)."""
        self._fresh.pop(room, None)
        await self.ensure_room(room)

    # --- emoji verification (SAS) -----------------------------------------------------------
    async def sas_start(self, user: str, device: str) -> str:
        """Ask ``user``'s ``device`` to compare emoji; progress arrives as
        ``VerificationUpdate`` events. The check travels over Olm: without a session with
        that device yet, one is made first (its one-time key claimed)."""
        await self.refresh_devices([user])
        ref = DeviceRef(user, device)
        if not any(d.device == device and not d.removed for d in self.engine.devices_of(user)):
            raise ClientError(f"{user} has no device {device}: nothing to verify")
        await self.ensure_sessions([ref])
        try:
            txn = self.engine.sas_start(user, device)
        except NoSession:
            # The session we had was dropped meanwhile (wedged, renewed): claim a new key.
            await self.ensure_sessions([ref])
            txn = self.engine.sas_start(user, device)
        await self.flush_to_device()
        return txn

    async def sas_accept(self, txn: str) -> None:
        self.engine.sas_accept(txn)
        await self.flush_to_device()

    async def sas_confirm(self, txn: str) -> list[ClientEvent]:
        """The person says the emoji match: send our MAC (verified once theirs is in too)."""
        updates = self.engine.sas_confirm(txn)
        await self.flush_to_device()
        return [VerificationUpdate(u) for u in updates]

    async def sas_cancel(self, txn: str) -> None:
        self.engine.sas_cancel(txn)
        await self.flush_to_device()

    # --- showing messages --------------------------------------------------------------------
    def _shown(self, result: Decrypted | Undecryptable, ts: datetime | None) -> ClientEvent:
        ts = ts or self._sent_at.get((result.room, result.seq))
        if isinstance(result, Decrypted):
            when = ts or datetime.fromtimestamp(0).astimezone()
            if ts is not None and is_expired(result.content, ts.timestamp()):
                # Its timer ran out: every client enforces it, whatever the server still has.
                self.engine.store.history_delete(result.room, [result.seq])
                return MessageExpired(result.room, result.seq, result.msg_id)
            entry = {
                "sender": result.sender,
                "device": result.sender_device,
                "msg_id": result.msg_id,
                "ts": when.isoformat(),
                "content": result.content,
            }
            self.engine.store.history_put(result.room, result.seq, entry)
            return MessageShown(
                result.room,
                result.seq,
                result.msg_id,
                result.sender,
                result.sender_device,
                when,
                dict(result.content),
                result.verified,
            )
        if not result.retryable:
            self._emit(SecurityAlert(result.room, str(result), result.sender))
        return MessageUndecryptable(
            result.room,
            result.seq,
            result.msg_id,
            result.sender,
            result.sender_device,
            ts or datetime.fromtimestamp(0).astimezone(),
            str(result),
            result.retryable,
            result.reason,
        )
