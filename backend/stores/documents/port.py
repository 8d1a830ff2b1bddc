"""Document port: encrypted messages, the to-device queue and the event log.

Adapters: MongoDB through pymongo's ``AsyncMongoClient`` (cluster mode) and SQLite (embedded
mode). Only standard MongoDB operations are used so the adapter runs unchanged on ``mongod``.

The server stores ciphertext it cannot read: ``ciphertext`` is opaque bytes-as-text that no
adapter parses, indexes or logs.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EXPIRED = "expired"
"""The ``kind`` of a disappearing message whose time has passed (its ciphertext is gone)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One archived room message."""

    room: str
    seq: int
    msg_id: str
    sender: str
    device: str
    ts: datetime
    ciphertext: str
    kind: str = "m"
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ToDevice:
    """An end-to-end encrypted message for one device (key sharing, verification)."""

    id: str
    recipient_user: str
    recipient_device: str
    sender_user: str
    sender_device: str
    ts: datetime
    ciphertext: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event-log entry in the seed's format; never a message body, password or token."""

    event_id: str
    datetime: datetime
    server: str
    category: str
    id: str
    data: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    server: str | None = None
    category: str | None = None
    id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


class DocumentStore(abc.ABC):
    """Messages, to-device messages and events. All datetimes are timezone-aware UTC."""

    # --- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    async def setup(self, *, event_retention_days: int = 30) -> None:
        """Create collections/tables and indexes (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- room messages -----------------------------------------------------------------------
    @abc.abstractmethod
    async def find_message(self, msg_id: str) -> StoredMessage | None:
        """The archived message with this client-made id, if any (dedupe)."""

    @abc.abstractmethod
    async def next_seq(self, room: str) -> int:
        """Atomically allocate the next per-room sequence number (1, 2, 3, ...)."""

    @abc.abstractmethod
    async def insert_message(self, message: StoredMessage) -> bool:
        """Insert durably; False (and nothing written) if ``msg_id`` already exists."""

    @abc.abstractmethod
    async def insert_messages(self, batch: Sequence[StoredMessage]) -> int:
        """Insert ``batch`` durably in one write, in order, up to the first message whose
        ``msg_id`` already exists; how many were written (``len(batch)``: all of it). Those
        before the clash are stored, the clashing one and those after it are not. A
        ``(room, seq)`` clash raises, as in ``insert_message``."""

    @abc.abstractmethod
    async def messages_after(self, room: str, after: int, limit: int) -> list[StoredMessage]:
        """Messages with ``seq > after`` in ascending seq order."""

    @abc.abstractmethod
    async def messages_before(self, room: str, before: int, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages with ``seq < before``, in ascending seq order."""

    @abc.abstractmethod
    async def latest_seq(self, rooms: Sequence[str]) -> dict[str, int]:
        """The highest archived seq per room (rooms without messages map to 0)."""

    @abc.abstractmethod
    async def delete_room(self, room: str) -> int:
        """Remove every message of a room and its counter; return how many messages."""

    @abc.abstractmethod
    async def expire_messages(self, now: datetime) -> int:
        """Blank every message whose ``expires_at`` has passed: its ciphertext is deleted and
        its ``kind`` becomes ``EXPIRED``; how many. The record (seq, msg_id, sender, times)
        stays, so a room's history has no holes and no seq is ever handed out twice."""

    # --- to-device queue ---------------------------------------------------------------------
    @abc.abstractmethod
    async def put_to_device(self, message: ToDevice) -> bool:
        """Store for the recipient device; False if ``id`` already exists (dedupe)."""

    @abc.abstractmethod
    async def pending_to_device(self, user: str, device: str, limit: int) -> list[ToDevice]:
        """Unacknowledged messages for a device, oldest first."""

    @abc.abstractmethod
    async def ack_to_device(self, user: str, device: str, ids: Sequence[str]) -> int:
        """Delete acknowledged messages of that device only; return how many."""

    @abc.abstractmethod
    async def delete_device_inbox(self, user: str, device: str | None = None) -> int:
        """Drop a device's (or with None, every device of the user's) pending messages."""

    # --- event log -------------------------------------------------------------------------
    @abc.abstractmethod
    async def insert_events(self, events: Sequence[EventRecord]) -> int:
        """Store a batch of events in one write; how many were new. An event whose
        ``event_id`` already exists is skipped (at-least-once consumers), so after an error
        (when some of the batch may be stored) the whole batch can be sent again."""

    @abc.abstractmethod
    async def query_events(self, query: EventQuery) -> list[EventRecord]:
        """Events matching every given filter, newest first, at most ``query.limit``."""
