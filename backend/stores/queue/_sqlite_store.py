"""Tables and SQL of the embedded queue. Every operation runs inside the caller's transaction.

A message row is *ready* while ``owner`` is NULL and *delivered* while it names the consumer
holding it. ``deliveries`` counts hand-outs, which is what dead-letters a message that keeps
failing. Ids grow, so ``ORDER BY id`` is FIFO, and a requeued message keeps its place at the
head as in RabbitMQ; a dead-lettered one is re-inserted at the tail of its dead-letter queue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.stores.queue._group_commit import Row
from backend.stores.queue.port import QueueUnavailable

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

queues = Table(
    "queues",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("dead_letter", String(255), nullable=True),
    # NULL for a dead-letter queue: it keeps what it gets however often it is handed out.
    Column("max_deliveries", Integer, nullable=True),
    Column("max_length", Integer, nullable=True),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("message_id", String(255), nullable=True),
    Column("headers", JSON, nullable=False),
    Column("deliveries", Integer, nullable=False, default=0),
    Column("owner", String(64), nullable=True),
    Index(None, "queue", "owner", "id"),
    Index(None, "owner"),
)


_READY = messages.c.owner.is_(None)

# The statements of every message, built once: building one cost more CPU than running it.
_PUBLISH = insert(messages)
_ACK = delete(messages).where(
    messages.c.id == bindparam("pk"), messages.c.owner == bindparam("claimant")
)
_OLDEST_READY = (
    select(messages.c.id)
    .where(messages.c.queue == bindparam("from_queue"), _READY)
    .order_by(messages.c.id)
    .limit(bindparam("most", type_=Integer))
)
_CLAIM = (
    update(messages)
    .where(messages.c.id.in_(_OLDEST_READY))
    .values(owner=bindparam("claimant"), deliveries=messages.c.deliveries + 1)
    .returning(
        messages.c.id,
        messages.c.body,
        messages.c.message_id,
        messages.c.headers,
        messages.c.deliveries,
    )
)


@dataclass(frozen=True, slots=True)
class Declared:
    """A queue's settings as stored."""

    dead_letter: str | None
    max_deliveries: int | None
    max_length: int | None


DEAD_LETTER_QUEUE = Declared(dead_letter=None, max_deliveries=None, max_length=None)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message just handed to a consumer."""

    id: int
    body: bytes
    message_id: str | None
    headers: dict[str, str]
    deliveries: int


class QueueStore:
    """The queue operations, over a cache of the declared queues' settings."""

    def __init__(self) -> None:
        self.declared: dict[str, Declared] = {}

    async def load(self, conn: AsyncConnection) -> None:
        rows = await conn.execute(select(queues))
        self.declared = {
            row.name: Declared(row.dead_letter, row.max_deliveries, row.max_length) for row in rows
        }

    async def declare(
        self, conn: AsyncConnection, wanted: Mapping[str, Declared]
    ) -> dict[str, Declared]:
        """Create each queue; an existing main queue must have the same settings.

        Returns the settings as stored, for the cache.
        """
        stored: dict[str, Declared] = {}
        for name, settings in wanted.items():
            row = (await conn.execute(select(queues).where(queues.c.name == name))).first()
            if row is None:
                await conn.execute(
                    insert(queues).values(
                        name=name,
                        dead_letter=settings.dead_letter,
                        max_deliveries=settings.max_deliveries,
                        max_length=settings.max_length,
                    )
                )
                stored[name] = settings
                continue
            existing = Declared(row.dead_letter, row.max_deliveries, row.max_length)
            # A dead-letter queue declared alongside accepts whatever is already there.
            if settings != DEAD_LETTER_QUEUE and existing != settings:
                raise QueueUnavailable(
                    f"queue {name!r} already exists with other settings ({existing}); "
                    "use a new name or migrate the old queue"
                )
            stored[name] = existing
        return stored

    @staticmethod
    def publish_row(
        queue: str, body: bytes, message_id: str | None, headers: Mapping[str, str]
    ) -> Row:
        """The insert of one published message (``GroupCommit.submit_row``)."""
        return _PUBLISH, {
            "queue": queue,
            "body": body,
            "message_id": message_id,
            "headers": dict(headers),
        }

    async def trim_published(self, conn: AsyncConnection, written: list[Row]) -> None:
        """Trim each length-limited queue published to in this transaction, once, at its end.

        The same rows go as when trimming after every insert (the oldest ready ones beyond
        the limit; nothing claims in between inside one transaction), for one count query
        per queue instead of one per publish: an events batch of 64 paid 64 counts.
        """
        published = {params["queue"] for statement, params in written if statement is _PUBLISH}
        for queue in sorted(published):
            await self._trim(conn, queue)

    async def claim(
        self, conn: AsyncConnection, queue: str, owner: str, limit: int
    ) -> list[Claimed]:
        """Hand up to ``limit`` ready messages, oldest first, to ``owner``."""
        rows = await conn.execute(_CLAIM, {"from_queue": queue, "claimant": owner, "most": limit})
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    @staticmethod
    def ack_row(message: int, owner: str) -> Row:
        """The delete of one acked message (``GroupCommit.submit_row``)."""
        return _ACK, {"pk": message, "claimant": owner}

    async def reject(self, conn: AsyncConnection, message: int, owner: str) -> None:
        """Dead-letter (or drop) a message its owner gave up on."""
        queue = await conn.scalar(
            select(messages.c.queue).where(messages.c.id == message, messages.c.owner == owner)
        )
        if queue is not None:
            await self._dead_letter(conn, [message], self._settings(queue).dead_letter)

    async def release(
        self, conn: AsyncConnection, *, where: Sequence[ColumnElement[bool]] = ()
    ) -> None:
        """Make delivered messages ready again, or dead-letter those out of deliveries."""
        rows = await conn.execute(
            select(messages.c.id, messages.c.queue, messages.c.deliveries).where(
                messages.c.owner.is_not(None), *where
            )
        )
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_queue[row.queue].append(row)
        for queue, held in by_queue.items():
            settings = self._settings(queue)
            limit = settings.max_deliveries
            spent = [r.id for r in held if limit is not None and r.deliveries >= limit]
            back = [r.id for r in held if limit is None or r.deliveries < limit]
            if back:
                await conn.execute(
                    update(messages).where(messages.c.id.in_(back)).values(owner=None)
                )
            await self._dead_letter(conn, spent, settings.dead_letter)
            await self._trim(conn, queue)

    async def purge(self, conn: AsyncConnection, queue: str) -> int:
        result = await conn.execute(delete(messages).where(messages.c.queue == queue, _READY))
        return int(result.rowcount)

    async def depth(self, conn: AsyncConnection, queue: str) -> int:
        count = select(func.count()).select_from(messages).where(messages.c.queue == queue, _READY)
        return int((await conn.execute(count)).scalar_one())

    def _settings(self, queue: str) -> Declared:
        return self.declared.get(queue, DEAD_LETTER_QUEUE)

    async def _dead_letter(self, conn: AsyncConnection, ids: list[int], target: str | None) -> None:
        if not ids:
            return
        if target is not None:
            copies = (
                select(
                    literal(target),
                    messages.c.body,
                    messages.c.message_id,
                    messages.c.headers,
                    literal(0),
                )
                .where(messages.c.id.in_(ids))
                .order_by(messages.c.id)
            )
            await conn.execute(
                insert(messages).from_select(
                    ["queue", "body", "message_id", "headers", "deliveries"], copies
                )
            )
        await conn.execute(delete(messages).where(messages.c.id.in_(ids)))
        if target is not None:
            await self._trim(conn, target)

    async def _trim(self, conn: AsyncConnection, queue: str) -> None:
        """Drop (dead-letter) the oldest ready messages beyond the queue's length limit."""
        settings = self._settings(queue)
        if settings.max_length is None:
            return
        # Counts the ready messages only, as RabbitMQ does; cheap while consumers keep up.
        ready = (messages.c.queue == queue, _READY)
        count = await conn.scalar(select(func.count()).select_from(messages).where(*ready))
        excess = int(count or 0) - settings.max_length
        if excess > 0:
            oldest = await conn.scalars(
                select(messages.c.id).where(*ready).order_by(messages.c.id).limit(excess)
            )
            await self._dead_letter(conn, list(oldest), settings.dead_letter)
