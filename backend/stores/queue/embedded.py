"""Embedded adapter of the durable queue port: one SQLite file, one process.

``publish`` returns after its row is committed (WAL, ``synchronous=FULL``), so the embedded
mode keeps "acked ⇒ durable". Writes go through a group commit; consumers sleep on events
that commits set. Messages a crashed process left delivered are made ready again (counted
as a delivery, as RabbitMQ counts a dropped channel) when the queue is next opened.

A single-active-consumer queue hands out messages to the oldest open subscription of this
adapter only; the next one takes over when it closes. The flag lives in the adapter, not in
the file: the embedded mode is one process, and that process declares what it consumes.
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
        self._writer = GroupCommit(
            self._engine, self._wake, before_commit=self._store.trim_published
        )
        self._subscriptions: set[SqliteSubscription] = set()
        # Single-active-consumer queues, and every queue's subscriptions in opening order.
        self._single_active: dict[str, bool] = {}
        self._consumers: dict[str, list[SqliteSubscription]] = {}
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
        known = self._single_active.get(spec.name)
        if known is not None and known != spec.single_active_consumer:
            raise QueueUnavailable(
                f"queue {spec.name!r} already exists with single_active_consumer={known}; "
                "use a new name or migrate the old queue"
            )
        wanted: dict[str, Declared] = {}
        if spec.dead_letter is not None:
            wanted[spec.dead_letter] = DEAD_LETTER_QUEUE
        wanted[spec.name] = Declared(spec.dead_letter, spec.max_deliveries, spec.max_length)
        stored = await self._writer.submit(partial(self._store.declare, wanted=wanted))
        self._store.declared.update(stored)
        self._single_active[spec.name] = spec.single_active_consumer

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        settings = await self._declared(queue)
        statement, params = self._store.publish_row(queue, body, message_id, headers or {})
        await self._writer.submit_row(statement, params, touches=(queue, settings.dead_letter))

    def consume(self, queue: str, *, prefetch: int = 64) -> SqliteSubscription:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        subscription = SqliteSubscription(
            queue,
            prefetch,
            store=self._store,
            writer=self._writer,
            check=self._declared,
            on_close=self._forget,
            may_claim=self._may_claim,
            poll_interval=self._poll,
        )
        self._subscriptions.add(subscription)
        self._consumers.setdefault(queue, []).append(subscription)
        return subscription

    async def purge(self, queue: str) -> int:
        await self._declared(queue)
        return await self._writer.submit(partial(self._store.purge, queue=queue))

    async def depth(self, queue: str) -> int:
        await self._declared(queue)
        async with self._engine.connect() as conn:
            return await self._store.depth(conn, queue)

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

    def _may_claim(self, subscription: SqliteSubscription) -> bool:
        """Whether ``subscription`` may take messages: always, unless another is active."""
        if not self._single_active.get(subscription.queue, False):
            return True
        return self._consumers[subscription.queue][0] is subscription

    def _forget(self, subscription: SqliteSubscription) -> None:
        self._subscriptions.discard(subscription)
        waiting = self._consumers.get(subscription.queue, [])
        if subscription in waiting:
            waiting.remove(subscription)
        if waiting:
            waiting[0].wake()  # a standby consumer may now be the active one
        else:
            self._consumers.pop(subscription.queue, None)

    def _wake(self, touched: Iterable[str]) -> None:
        names = set(touched)
        for subscription in self._subscriptions:
            if subscription.queue in names:
                subscription.wake()
