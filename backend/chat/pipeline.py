"""Message intake: a member's encrypted message becomes durable before the sender is acked.

The chat node checks membership and publishes the envelope to one of ``N`` partition queues
(``sealchat.messages.{p}``, ``p = stable_hash(room) % N``). Each partition queue has a single
active consumer (the archiver), so a room has exactly one writer and its messages keep their
queue order. ``accept`` returns only after the queue confirmed the publish: acked ⇒ durable.

The ciphertext is opaque: it is size-checked, stored and forwarded, never parsed or logged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import EXPIRED_KIND, MAX_TTL, MIN_TTL
from backend.stores.queue.port import DurableQueue, QueueSpec, QueueUnavailable

DEFAULT_PARTITIONS = 8
"""Partition queues per deployment. Intake and archiver must agree; change it only with the
queues drained, since a room moving to another partition loses its ordering guarantee."""

MAX_CIPHERTEXT_BYTES = 60_000
"""Hard ceiling of one message's ciphertext (UTF-8 bytes); fits a 64 KiB request body."""

NAMESPACE = "sealchat.messages"
"""Prefix of the partition queues' names (another one lets deployments share a broker)."""
MAX_DELIVERIES = 5
"""Deliveries before the broker gives up on a message that keeps killing its consumer."""

# 128 bits: 32 hex digits, or 22 unpadded URL-safe base64 characters.
_MSG_ID = re.compile(r"[0-9a-fA-F]{32}|[A-Za-z0-9_-]{22}")
_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,31}")

IsMember = Callable[[str, str], Awaitable[bool]]
"""``is_member(room, user)``: whether ``user`` may post in ``room`` right now."""


class MalformedEnvelope(ValueError):
    """An envelope that cannot be archived; the message says which field, never its content."""


class CiphertextTooLarge(MalformedEnvelope):
    """The ciphertext is over the size limit."""


def partition_of(room: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(room.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def partition_queue(partition: int, namespace: str = NAMESPACE) -> str:
    return f"{namespace}.{partition}"


def dead_letter_queue(namespace: str = NAMESPACE) -> str:
    """Where malformed messages and messages that cannot be archived end up, for operators."""
    return f"{namespace}.dead"


def partition_specs(partitions: int, namespace: str = NAMESPACE) -> list[QueueSpec]:
    """The partition queues, as both the intake and the archiver declare them."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return [
        QueueSpec(
            name=partition_queue(p, namespace),
            dead_letter=dead_letter_queue(namespace),
            max_deliveries=MAX_DELIVERIES,
            single_active_consumer=True,  # one writer per room: seq without a counter
        )
        for p in range(partitions)
    ]


def format_ts(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: the precision every document store keeps."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _millis(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


def _aware(value: object, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise MalformedEnvelope(f"{field} is not an aware ISO 8601 time")
    return parsed


def _check(field: str, value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise MalformedEnvelope(f"{field} is missing or not valid")
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on its way to the archive, as it travels through the queue."""

    msg_id: str
    room: str
    sender: str
    device: str
    ts: datetime
    ciphertext: str
    kind: str = "m"
    expires_at: datetime | None = None
    """When the archive deletes the ciphertext (a disappearing message), or never."""

    @classmethod
    def create(
        cls,
        *,
        msg_id: object,
        room: object,
        sender: object,
        device: object,
        ciphertext: object,
        kind: object = "m",
        now: datetime | None = None,
        max_ciphertext_bytes: int = MAX_CIPHERTEXT_BYTES,
        ttl: object = None,
        expires_at: datetime | None = None,
    ) -> Envelope:
        """A validated envelope stamped with the server's time (to the millisecond); ``ttl``
        seconds (or an absolute ``expires_at``, when decoding) make it disappear."""
        msg_id = _check("msg_id", msg_id, _MSG_ID)
        if len(msg_id) == 32:
            msg_id = msg_id.lower()  # one spelling per id, so a resend dedupes
        if not isinstance(ciphertext, str) or not ciphertext:
            raise MalformedEnvelope("ciphertext is missing or not a string")
        if len(ciphertext) > max_ciphertext_bytes:  # cheap first: never encode a huge string
            raise CiphertextTooLarge(f"ciphertext is larger than {max_ciphertext_bytes} bytes")
        try:
            size = len(ciphertext.encode())
        except UnicodeEncodeError as exc:  # lone surrogates: no store keeps them
            raise MalformedEnvelope("ciphertext is not valid Unicode text") from exc
        if size > max_ciphertext_bytes:
            raise CiphertextTooLarge(f"ciphertext is larger than {max_ciphertext_bytes} bytes")
        kind = _check("kind", kind, _KIND)
        if kind == EXPIRED_KIND:
            raise MalformedEnvelope("kind 'expired' is reserved for deleted messages")
        ts = _millis(now or datetime.now(UTC))
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
                raise MalformedEnvelope(f"ttl must be whole seconds from {MIN_TTL} to {MAX_TTL}")
            expires_at = ts + timedelta(seconds=ttl)
        return cls(
            msg_id=msg_id,
            room=_check("room", room, _NAME),
            sender=_check("sender", sender, _NAME),
            device=_check("device", device, _NAME),
            ts=ts,
            ciphertext=ciphertext,
            kind=kind,
            expires_at=None if expires_at is None else _millis(expires_at),
        )

    def encode(self) -> bytes:
        data = {
            "msg_id": self.msg_id,
            "room": self.room,
            "sender": self.sender,
            "device": self.device,
            "ts": format_ts(self.ts),
            "ciphertext": self.ciphertext,
            "kind": self.kind,
        }
        if self.expires_at is not None:
            data["expires_at"] = format_ts(self.expires_at)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes) -> Envelope:
        """Parse a queued envelope; ``MalformedEnvelope`` for anything not made by ``encode``."""
        try:
            data: Any = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedEnvelope("the body is not JSON") from exc
        if not isinstance(data, dict):
            raise MalformedEnvelope("the body is not a JSON object")
        raw_ts = data.get("ts")
        try:
            ts = datetime.fromisoformat(raw_ts) if isinstance(raw_ts, str) else None
        except ValueError:
            ts = None
        if ts is None or ts.tzinfo is None:
            raise MalformedEnvelope("ts is missing or not an aware ISO 8601 time")
        expires_at = _aware(data.get("expires_at"), "expires_at") if "expires_at" in data else None
        envelope = cls.create(
            msg_id=data.get("msg_id"),
            room=data.get("room"),
            sender=data.get("sender"),
            device=data.get("device"),
            ciphertext=data.get("ciphertext"),
            kind=data.get("kind"),
            now=ts,
            expires_at=expires_at,
        )
        if envelope.msg_id != data.get("msg_id"):
            raise MalformedEnvelope("msg_id is not in its canonical spelling")
        return envelope


class Intake:
    """Accepts members' messages into the partition queues."""

    def __init__(
        self,
        queue: DurableQueue,
        is_member: IsMember,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        max_ciphertext_bytes: int = MAX_CIPHERTEXT_BYTES,
        namespace: str = NAMESPACE,
    ) -> None:
        if not 1 <= max_ciphertext_bytes <= MAX_CIPHERTEXT_BYTES:
            raise ValueError(f"max_ciphertext_bytes must be within 1..{MAX_CIPHERTEXT_BYTES}")
        self._queue = queue
        self._is_member = is_member
        self._specs = partition_specs(partitions, namespace)
        self.partitions = partitions
        self.namespace = namespace
        self.max_ciphertext_bytes = max_ciphertext_bytes
        self._declared = False
        self.accepted = 0

    async def declare(self) -> None:
        """Declare the partition queues (idempotent; ``accept`` does it on first use)."""
        for spec in self._specs:
            await self._queue.declare(spec)
        self._declared = True

    def envelope(
        self,
        *,
        msg_id: object,
        room: object,
        sender: str,
        device: str,
        ciphertext: object,
        kind: object = "m",
        ttl: object = None,
    ) -> Envelope:
        """Build the envelope of a client's frame; ``ApiError`` says what is wrong with it."""
        try:
            return Envelope.create(
                msg_id=msg_id,
                room=room,
                sender=sender,
                device=device,
                ciphertext=ciphertext,
                kind=kind,
                max_ciphertext_bytes=self.max_ciphertext_bytes,
                ttl=ttl,
            )
        except CiphertextTooLarge as exc:
            raise ApiError(ErrorCode.TOO_LARGE, f"message refused: {exc}") from exc
        except MalformedEnvelope as exc:
            raise ApiError(ErrorCode.INVALID, f"message refused: {exc}") from exc

    async def accept(self, envelope: Envelope) -> Envelope:
        """Publish ``envelope`` and return it once the queue confirmed it (then ack the client).

        A resend with the same ``msg_id`` is published again; the archiver stores it once.
        """
        if not await self._is_member(envelope.room, envelope.sender):
            # The same answer whether or not the room exists: nothing leaks about other rooms.
            raise ApiError(
                ErrorCode.NOT_MEMBER, "you are not a member of this room; join it, then send"
            )
        try:
            if not self._declared:
                await self.declare()
            await self._queue.publish(
                partition_queue(partition_of(envelope.room, self.partitions), self.namespace),
                envelope.encode(),
                message_id=envelope.msg_id,
            )
        except QueueUnavailable as exc:
            raise ApiError(
                ErrorCode.UNAVAILABLE, "the message was not stored; send it again in a moment"
            ) from exc
        self.accepted += 1
        return envelope
