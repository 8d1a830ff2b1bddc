"""The event publisher: every emitted record reaches the durable queue once, in order, also
when many are waiting (published in batches) and after the queue was unavailable."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from backend.common.events import (
    EVENTS_QUEUE,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    EventPublisher,
)
from backend.stores.queue.embedded import SqliteQueue
from backend.stores.queue.port import QueueUnavailable

TEST_TIMEOUT = 60.0
RECORDS = 300


class Outage(SqliteQueue):
    """The real embedded queue, refusing its first ``failures`` publishes (a broker outage)."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    async def publish(self, queue: str, body: bytes, **kw: object) -> None:  # type: ignore[override]
        if self.failures > 0:
            self.failures -= 1
            raise QueueUnavailable("broker down")
        await super().publish(queue, body, **kw)  # type: ignore[arg-type]


async def consumed(queue: SqliteQueue, count: int) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    async with contextlib.aclosing(queue.consume(EVENTS_QUEUE.name, prefetch=64)) as deliveries:
        async for delivery in deliveries:
            batch = json.loads(delivery.body)
            assert isinstance(batch, list) and 1 <= len(batch) <= MAX_BATCH_RECORDS
            records.extend(batch)
            await delivery.ack()
            if len(records) >= count:
                break
    return records


async def test_every_record_is_published_once_in_order(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.sqlite3")
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            async with EventPublisher(queue, "test").running() as events:
                for n in range(RECORDS):
                    events.emit("test", "subject", n=n)
                await events.flush()
                assert (events.published, events.dropped, events.buffered()) == (RECORDS, 0, 0)
            records = await consumed(queue, RECORDS)
            assert [r["data"] for r in records] == [{"n": n} for n in range(RECORDS)]
            assert await queue.depth(EVENTS_QUEUE.name) == 0
    finally:
        await queue.close()


async def test_records_wait_out_an_outage_and_none_is_lost_or_repeated(tmp_path: Path) -> None:
    queue = Outage(tmp_path / "queue.sqlite3", failures=5)
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            async with EventPublisher(queue, "test").running() as events:
                for n in range(RECORDS):
                    events.emit("test", "subject", n=n)
                async with asyncio.timeout(30):
                    await events.flush()
                assert events.published == RECORDS
            assert queue.failures == 0
            records = await consumed(queue, RECORDS)
            assert sorted(r["data"]["n"] for r in records) == list(range(RECORDS))  # type: ignore[index]
    finally:
        await queue.close()


async def test_records_travel_in_batches_within_the_size_limit(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.sqlite3")
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            async with EventPublisher(queue, "test").running() as events:
                for n in range(RECORDS):  # all waiting at once: full batches
                    events.emit("test", "subject", n=n)
                await events.flush()
                small = await queue.depth(EVENTS_QUEUE.name)
                for n in range(40):  # ~10 KB each: the byte limit closes the batches
                    events.emit("test", "large", n=n, note="x" * 10_000)
                await events.flush()
            assert small == -(-RECORDS // MAX_BATCH_RECORDS)
            bodies = []
            async with contextlib.aclosing(queue.consume(EVENTS_QUEUE.name)) as deliveries:
                async for delivery in deliveries:
                    bodies.append(delivery.body)
                    await delivery.ack()
                    if sum(len(json.loads(b)) for b in bodies) == RECORDS + 40:
                        break
            large = [r for b in bodies for r in json.loads(b) if r["id"] == "large"]
            assert [r["data"]["n"] for r in large] == list(range(40))
            assert len(bodies) - small >= 2
            assert all(len(b) <= MAX_BATCH_BYTES for b in bodies)
    finally:
        await queue.close()
