"""SQLite adapter of the document port (embedded mode), on SQLAlchemy Core async + aiosqlite.

Mirrors the MongoDB adapter's behaviour: datetimes kept to the millisecond, a counter row per
room bumped in one statement, and events past their retention neither returned nor kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Index,
    Integer,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.stores.documents.port import (
    EXPIRED,
    DocumentStore,
    EventQuery,
    EventRecord,
    StoredMessage,
    ToDevice,
)
from backend.stores.documents.timeutil import utc_millis
from backend.stores.relational.engine import open_engine
from backend.stores.relational.types import UTCDateTime

# Like MongoDB's TTL monitor: expired events are swept at most this often.
_PRUNE_INTERVAL_SECONDS = 60.0

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

messages = Table(
    "messages",
    metadata,
    Column("msg_id", String(128), primary_key=True),
    Column("room", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("sender", String(64), nullable=False),
    Column("device", String(64), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("ciphertext", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    UniqueConstraint("room", "seq"),
    Index(None, "expires_at"),
)

counters = Table(
    "counters",
    metadata,
    Column("room", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),
)

to_device = Table(
    "to_device",
    metadata,
    # The rowid alias orders messages with equal ts as they arrived.
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("recipient_user", String(64), nullable=False),
    Column("recipient_device", String(64), nullable=False),
    Column("sender_user", String(64), nullable=False),
    Column("sender_device", String(64), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("ciphertext", Text, nullable=False),
    Index(None, "recipient_user", "recipient_device", "ts"),
)

logdata = Table(
    "logdata",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("datetime", UTCDateTime(), nullable=False, index=True),
    Column("server", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("id", String(128), nullable=False, index=True),
    Column("data", JSON, nullable=False),
    Column("request_id", String(128), nullable=True),
    Index(None, "server", "category"),
)

# The inserts of every message and event record, built once (building one cost more CPU than
# running it); the values come with each execution.
_INSERT_MESSAGE = insert(messages).on_conflict_do_nothing(index_elements=["msg_id"])
_INSERT_EVENT = insert(logdata).on_conflict_do_nothing(index_elements=["event_id"])

# Columns named as the dataclass fields, so a row mapping unpacks straight into a record.
_MESSAGE_NAMES = tuple(f.name for f in fields(StoredMessage))
_TO_DEVICE_NAMES = tuple(f.name for f in fields(ToDevice))
_EVENT_NAMES = tuple(f.name for f in fields(EventRecord))
_MESSAGE_COLUMNS = [messages.c[name] for name in _MESSAGE_NAMES]
_TO_DEVICE_COLUMNS = [to_device.c[name] for name in _TO_DEVICE_NAMES]
_EVENT_COLUMNS = [logdata.c[name] for name in _EVENT_NAMES]


class _Clash(Exception):
    """A batch of messages held a repeat: the transaction that wrote it is undone."""


class SqliteDocumentStore(DocumentStore):
    """Every document table in one SQLite file (WAL, ``synchronous=FULL``)."""

    def __init__(self, path: str | Path) -> None:
        self._engine = open_engine("sqlite+aiosqlite:///" + str(path))
        self._retention = timedelta(days=30)
        self._next_prune = 0.0

    # --- lifecycle -------------------------------------------------------------------------
    async def setup(self, *, event_retention_days: int = 30) -> None:
        if event_retention_days < 1:
            raise ValueError("event_retention_days must be at least 1")
        self._retention = timedelta(days=event_retention_days)
        async with self._engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await self._prune_events(conn)

    async def close(self) -> None:
        await self._engine.dispose()

    # --- room messages -----------------------------------------------------------------------
    async def find_message(self, msg_id: str) -> StoredMessage | None:
        rows = await self._read(select(*_MESSAGE_COLUMNS).where(messages.c.msg_id == msg_id))
        return StoredMessage(**rows[0]) if rows else None

    async def next_seq(self, room: str) -> int:
        # One upsert statement: SQLite's write lock makes the read-increment-write atomic.
        stmt = (
            insert(counters)
            .values(room=room, seq=1)
            .on_conflict_do_update(index_elements=["room"], set_={"seq": counters.c.seq + 1})
            .returning(counters.c.seq)
        )
        async with self._engine.begin() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def insert_message(self, message: StoredMessage) -> bool:
        # Only a msg_id clash is ignored; a (room, seq) clash still raises IntegrityError.
        async with self._engine.begin() as conn:
            return (await conn.execute(_INSERT_MESSAGE, _message_values(message))).rowcount == 1

    async def insert_messages(self, batch: Sequence[StoredMessage]) -> int:
        # One transaction, one fsync, up to the first msg_id clash.
        if not batch:
            return 0
        rows = [_message_values(message) for message in batch]
        try:
            async with self._engine.begin() as conn:
                # Usually nothing clashes: the whole batch in one executemany.
                if (await conn.execute(_INSERT_MESSAGE, rows)).rowcount != len(rows):
                    raise _Clash  # rows after a repeat went in too: undo, then go one by one
            return len(rows)
        except _Clash:
            pass
        written = 0
        async with self._engine.begin() as conn:
            for values in rows:
                if not (await conn.execute(_INSERT_MESSAGE, values)).rowcount:
                    break
                written += 1
        return written

    async def messages_after(self, room: str, after: int, limit: int) -> list[StoredMessage]:
        if limit < 1:
            return []
        stmt = (
            select(*_MESSAGE_COLUMNS)
            .where(messages.c.room == room, messages.c.seq > after)
            .order_by(messages.c.seq.asc())
            .limit(limit)
        )
        return [StoredMessage(**row) for row in await self._read(stmt)]

    async def messages_before(self, room: str, before: int, limit: int) -> list[StoredMessage]:
        if limit < 1:
            return []
        stmt = (
            select(*_MESSAGE_COLUMNS)
            .where(messages.c.room == room, messages.c.seq < before)
            .order_by(messages.c.seq.desc())
            .limit(limit)
        )
        return [StoredMessage(**row) for row in reversed(await self._read(stmt))]

    async def latest_seq(self, rooms: Sequence[str]) -> dict[str, int]:
        latest = dict.fromkeys(rooms, 0)
        if not latest:
            return latest
        stmt = (
            select(messages.c.room, func.max(messages.c.seq).label("seq"))
            .where(messages.c.room.in_(list(latest)))
            .group_by(messages.c.room)
        )
        for row in await self._read(stmt):
            latest[row["room"]] = int(row["seq"])
        return latest

    async def delete_room(self, room: str) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(messages).where(messages.c.room == room))
            await conn.execute(delete(counters).where(counters.c.room == room))
        return result.rowcount

    async def expire_messages(self, now: datetime) -> int:
        stmt = (
            update(messages)
            .where(messages.c.expires_at <= utc_millis(now), messages.c.kind != EXPIRED)
            .values(ciphertext="", kind=EXPIRED)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    # --- to-device queue ---------------------------------------------------------------------
    async def put_to_device(self, message: ToDevice) -> bool:
        values = _values(message, _TO_DEVICE_NAMES)
        values["ts"] = utc_millis(message.ts)
        stmt = insert(to_device).values(values).on_conflict_do_nothing(index_elements=["id"])
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def pending_to_device(self, user: str, device: str, limit: int) -> list[ToDevice]:
        if limit < 1:
            return []
        stmt = (
            select(*_TO_DEVICE_COLUMNS)
            .where(to_device.c.recipient_user == user, to_device.c.recipient_device == device)
            .order_by(to_device.c.ts.asc(), to_device.c.pk.asc())
            .limit(limit)
        )
        return [ToDevice(**row) for row in await self._read(stmt)]

    async def ack_to_device(self, user: str, device: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        stmt = delete(to_device).where(
            to_device.c.recipient_user == user,
            to_device.c.recipient_device == device,
            to_device.c.id.in_(list(ids)),
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def delete_device_inbox(self, user: str, device: str | None = None) -> int:
        stmt = delete(to_device).where(to_device.c.recipient_user == user)
        if device is not None:
            stmt = stmt.where(to_device.c.recipient_device == device)
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    # --- event log -------------------------------------------------------------------------
    async def insert_events(self, events: Sequence[EventRecord]) -> int:
        if not events:
            return 0
        rows = [_event_values(event) for event in events]
        # One statement executed for every row, in one transaction: one fsync per batch.
        async with self._engine.begin() as conn:
            if time.monotonic() >= self._next_prune:
                await self._prune_events(conn)
            return (await conn.execute(_INSERT_EVENT, rows)).rowcount

    async def query_events(self, query: EventQuery) -> list[EventRecord]:
        if query.limit < 1:
            return []
        floor = self._event_floor()
        since = floor if query.since is None else max(floor, utc_millis(query.since))
        where: list[ColumnElement[bool]] = [logdata.c.datetime >= since]
        if query.until is not None:
            where.append(logdata.c.datetime < utc_millis(query.until))
        for name in ("server", "category", "id"):
            value = getattr(query, name)
            if value is not None:
                where.append(logdata.c[name] == value)
        stmt = (
            select(*_EVENT_COLUMNS)
            .where(*where)
            .order_by(logdata.c.datetime.desc(), logdata.c.pk.desc())
            .limit(query.limit)
        )
        return [EventRecord(**row) for row in await self._read(stmt)]

    # --- helpers -------------------------------------------------------------------------
    def _event_floor(self) -> datetime:
        return utc_millis(datetime.now(UTC) - self._retention)

    async def _prune_events(self, conn: AsyncConnection) -> None:
        """Delete events past retention (what MongoDB's TTL index does on its own)."""
        await conn.execute(delete(logdata).where(logdata.c.datetime < self._event_floor()))
        self._next_prune = time.monotonic() + _PRUNE_INTERVAL_SECONDS

    async def _read(self, stmt: Any) -> Sequence[RowMapping]:
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt)).mappings().all()


def _values(record: object, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(record, name) for name in names}


def _message_values(message: StoredMessage) -> dict[str, Any]:
    values = _values(message, _MESSAGE_NAMES)
    values["ts"] = utc_millis(message.ts)
    if message.expires_at is not None:
        values["expires_at"] = utc_millis(message.expires_at)
    return values


def _event_values(event: EventRecord) -> dict[str, Any]:
    values = _values(event, _EVENT_NAMES)
    values["datetime"] = utc_millis(event.datetime)
    values["data"] = dict(event.data)
    return values
