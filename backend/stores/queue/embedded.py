"""Embedded adapter of the durable queue port: one SQLite file, one process.

``publish`` returns after its row is committed (WAL, ``synchronous=FULL``), so the embedded
mode keeps "acked ⇒ durable". Writes go through a group commit; consumers sleep on events
that commits set. Messages a crashed process left delivered are made ready again (counted
as a delivery, as RabbitMQ counts a dropped channel) when the queue is next opened.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from functools import partial

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from backend.stores.queue._group_commit import GroupCommit
from backend.stores.queue._sqlite_consumer import SqliteSubscription
from backend.stores.queue._sqlite_store import (
    DEAD_LETTER_QUEUE,
    Declared,
    QueueStore,
    metadata,
    queues,
)
from backend.stores.queue.port import DurableQueue, QueueSpec, QueueUnavailable
from backend.stores.relational.engine import open_engine


class SqliteQueue(DurableQueue):
    """Durable queues in the SQLite file at ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 5.0) -> None:
        self._engine = open_engine("sqlite+aiosqlite:///" + os.fspath(path))
        self._store = QueueStore()
        self._writer = GroupCommit(self._engine, self._wake)
        self._subscriptions: set[SqliteSubscription] = set()
        self._poll = poll_interval
        self._setup_lock = asyncio.Lock()
        self._is_setup = False
        self._closed = False

    async def setup(self) -> None:
        """Create the tables and take back what a previous process left delivered."""
        if self._closed:
            raise QueueUnavailable("the queue adapter is closed")
        if self._is_setup:
            return
        async with self._setup_lock:
            if self._is_setup:
                return
            try:
                async with self._engine.begin() as conn:
                    await conn.run_sync(metadata.create_all)
                    await self._store.load(conn)
                    await self._store.release(conn)
            except (SQLAlchemyError, OSError) as exc:
                raise QueueUnavailable(f"cannot open the queue store: {exc!r}") from exc
            self._is_setup = True

    async def declare(self, spec: QueueSpec) -> None:
        if spec.max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        await self.setup()
        wanted: dict[str, Declared] = {}
        if spec.dead_letter is not None:
            wanted[spec.dead_letter] = DEAD_LETTER_QUEUE
        wanted[spec.name] = Declared(spec.dead_letter, spec.max_deliveries, spec.max_length)
        stored = await self._writer.submit(partial(self._store.declare, wanted=wanted))
        self._store.declared.update(stored)

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        settings = await self._declared(queue)
        await self._writer.submit(
            partial(
                self._store.publish,
                queue=queue,
                body=body,
                message_id=message_id,
                headers=dict(headers or {}),
            ),
            touches=(queue, settings.dead_letter),
        )

    def consume(self, queue: str, *, prefetch: int = 64) -> SqliteSubscription:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        subscription = SqliteSubscription(
            queue,
            prefetch,
            store=self._store,
            writer=self._writer,
            check=self._declared,
            on_close=self._subscriptions.discard,
            poll_interval=self._poll,
        )
        self._subscriptions.add(subscription)
        return subscription

    async def purge(self, queue: str) -> int:
        await self._declared(queue)
        return await self._writer.submit(partial(self._store.purge, queue=queue))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        await self._writer.close()
        await self._engine.dispose()

    async def _declared(self, queue: str) -> Declared:
        """The queue's settings; ``QueueUnavailable`` if nobody declared it (as RabbitMQ)."""
        await self.setup()
        settings = self._store.declared.get(queue)
        if settings is None:  # perhaps declared by another process since we loaded
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(queues).where(queues.c.name == queue))).first()
            if row is not None:
                settings = Declared(row.dead_letter, row.max_deliveries, row.max_length)
                self._store.declared[queue] = settings
        if settings is None:
            raise QueueUnavailable(f"no queue named {queue!r}; declare it first")
        return settings

    def _wake(self, touched: Iterable[str]) -> None:
        names = set(touched)
        for subscription in self._subscriptions:
            if subscription.queue in names:
                subscription.wake()
