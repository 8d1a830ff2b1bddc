"""The log consumer against every queue and document adapter: SQLite, and RabbitMQ + MongoDB.

Each test owns its queue names, so tests sharing a vhost never see each other's records.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from backend.common.events import MAX_BATCH_RECORDS, event_record
from backend.log.consumer import EventConsumer
from backend.stores.documents.port import DocumentStore, EventQuery, EventRecord
from backend.stores.documents.sqlite import SqliteDocumentStore
from backend.stores.queue.embedded import SqliteQueue
from backend.stores.queue.port import DurableQueue, QueueSpec
from backend.stores.queue.rabbitmq import RabbitQueue

TEST_TIMEOUT = 60.0


class SlowStore:
    """Test double: the real store's ``insert_events`` behind a delay, so that a consumer can
    be stopped while it holds unacked records (the consumer calls nothing else)."""

    def __init__(self, inner: DocumentStore, delay: float) -> None:
        self._inner, self._delay = inner, delay

    async def insert_events(self, events: Sequence[EventRecord]) -> int:
        await asyncio.sleep(self._delay)
        return await self._inner.insert_events(events)


class HalfWriteStore:
    """Test double: the real store, except that its first write stores only the first half
    of the batch and then fails, as a write cut short by a lost connection would."""

    def __init__(self, inner: DocumentStore) -> None:
        self._inner = inner
        self.calls = 0

    async def insert_events(self, events: Sequence[EventRecord]) -> int:
        self.calls += 1
        if self.calls == 1:
            await self._inner.insert_events(events[: len(events) // 2])
            raise RuntimeError("the write was cut short")
        return await self._inner.insert_events(events)


CLUSTER = pytest.param("cluster", marks=[pytest.mark.rabbitmq, pytest.mark.mongo])


@pytest.fixture(params=["embedded", CLUSTER])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Callable[[], DurableQueue], DocumentStore]]:
    opened: list[DurableQueue] = []
    if request.param == "embedded":
        documents: DocumentStore = SqliteDocumentStore(tmp_path / "documents.sqlite3")

        def make() -> DurableQueue:
            return SqliteQueue(tmp_path / "queue.sqlite3")
    else:
        from backend.stores.documents.mongo import MongoDocumentStore

        url = request.getfixturevalue("rabbitmq_url")
        documents = MongoDocumentStore(
            request.getfixturevalue("mongo_url"), request.getfixturevalue("mongo_database")
        )

        def make() -> DurableQueue:
            return RabbitQueue(url)

    def opener() -> DurableQueue:
        queue = make()
        opened.append(queue)
        return queue

    await documents.setup()
    try:
        yield opener, documents
    finally:
        for queue in opened:
            await queue.close()
        await documents.close()


def spec() -> QueueSpec:
    name = f"sealchat.test.events.{uuid.uuid4().hex[:10]}"
    return QueueSpec(name=name, dead_letter=name + ".dead", max_deliveries=5)


def record(subject: str, n: int) -> dict[str, Any]:
    return event_record("auth", "signin", subject, {"result": "success", "n": n}, f"req{n}")


async def publish(queue: DurableQueue, s: QueueSpec, body: dict[str, Any] | bytes) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    message_id = None if isinstance(body, bytes) else body["event_id"]
    await queue.publish(s.name, raw, message_id=message_id)


async def stored_of(documents: DocumentStore, subject: str) -> list[EventRecord]:
    return await documents.query_events(EventQuery(id=subject, limit=1000))


async def until(check: Callable[[], bool]) -> None:
    """Poll a counter the consumer keeps (it has no event to wait on); callers bound it."""
    while not check():  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.02)


async def wait_for_count(documents: DocumentStore, subject: str, count: int) -> list[EventRecord]:
    while len(found := await stored_of(documents, subject)) < count:  # noqa: ASYNC110 (a store)
        await asyncio.sleep(0.05)
    return found


async def test_every_record_is_stored_once_with_its_fields(stores) -> None:
    open_queue, documents = stores
    queue, s = open_queue(), spec()
    subject = "u" + uuid.uuid4().hex[:10]
    records = [record(subject, n) for n in range(20)]
    async with asyncio.timeout(TEST_TIMEOUT):
        await queue.declare(s)
        for r in records:
            await publish(queue, s, r)
        await publish(queue, s, records[3])  # at least once: a repeat is absorbed
        async with EventConsumer(queue, documents, spec=s).running() as consumer:
            found = await wait_for_count(documents, subject, 20)
            await until(lambda: consumer.counters.duplicates >= 1)
    assert sorted(e.event_id for e in found) == sorted(r["event_id"] for r in records)
    by_id = {e.event_id: e for e in found}
    for r in records:
        e = by_id[r["event_id"]]
        assert (e.server, e.category, e.id) == ("auth", "signin", subject)
        assert e.request_id == r["request_id"]
        assert dict(e.data) == r["data"]
        assert e.datetime.isoformat().replace("+00:00", "Z")[:23] == r["datetime"][:23]
    assert consumer.counters.stored == 20 and consumer.counters.dead_lettered == 0


async def test_a_consumer_restart_loses_nothing(stores) -> None:
    open_queue, documents = stores
    s = spec()
    subject = "u" + uuid.uuid4().hex[:10]
    total = 60
    async with asyncio.timeout(TEST_TIMEOUT):
        producer = open_queue()
        await producer.declare(s)
        for n in range(total):
            await publish(producer, s, record(subject, n))
        # The first consumer stops (its adapter closes, like a crashed process) while it holds
        # unacked records; the second, on a new connection, must get every one of them.
        first_queue = open_queue()
        slow = SlowStore(documents, delay=0.02)
        async with EventConsumer(first_queue, slow, spec=s, prefetch=16).running() as first:
            await until(lambda: first.counters.stored >= 10)
        await first_queue.close()
        stopped_at = len(await stored_of(documents, subject))
        assert 10 <= stopped_at < total, "the restart must happen mid-stream"
        async with EventConsumer(open_queue(), documents, spec=s).running():
            found = await wait_for_count(documents, subject, total)
            await asyncio.sleep(0.3)  # anything redelivered late would show up as a repeat
            found = await stored_of(documents, subject)
    assert len(found) == total
    assert sorted(int(e.data["n"]) for e in found) == list(range(total))


async def test_a_batch_delivered_again_stores_only_its_new_records(stores) -> None:
    open_queue, documents = stores
    queue, s = open_queue(), spec()
    subject = "u" + uuid.uuid4().hex[:10]
    batch = [record(subject, n) for n in range(5)]
    async with asyncio.timeout(TEST_TIMEOUT):
        await queue.declare(s)
        await publish(queue, s, json.dumps(batch).encode())
        await publish(queue, s, json.dumps(batch[3:]).encode())  # a batch delivered again
        async with EventConsumer(queue, documents, spec=s).running() as consumer:
            await wait_for_count(documents, subject, 5)
            await until(lambda: consumer.counters.duplicates == 2)
    stored = await stored_of(documents, subject)
    assert sorted(e.event_id for e in stored) == sorted(r["event_id"] for r in batch)
    assert (consumer.counters.stored, consumer.counters.dead_lettered) == (5, 0)


async def test_a_batch_whose_write_failed_half_way_is_stored_once(stores) -> None:
    open_queue, documents = stores
    queue, s = open_queue(), spec()
    subject = "u" + uuid.uuid4().hex[:10]
    batch = [record(subject, n) for n in range(8)]
    flaky = HalfWriteStore(documents)
    async with asyncio.timeout(TEST_TIMEOUT):
        await queue.declare(s)
        await publish(queue, s, json.dumps(batch).encode())
        consumer = EventConsumer(queue, flaky, spec=s, retry_delay=0.01)  # type: ignore[arg-type]
        async with consumer.running():
            await wait_for_count(documents, subject, 8)
            await until(lambda: consumer.counters.stored + consumer.counters.duplicates == 8)
    stored = await stored_of(documents, subject)
    assert sorted(e.event_id for e in stored) == sorted(r["event_id"] for r in batch)
    # The retry wrote the whole batch again: the half already in was skipped, not doubled.
    assert (flaky.calls, consumer.counters.retries) == (2, 1)
    assert (consumer.counters.stored, consumer.counters.duplicates) == (4, 4)
    assert consumer.counters.dead_lettered == 0


async def test_malformed_records_go_to_the_dead_letter_queue(stores) -> None:
    open_queue, documents = stores
    queue, s = open_queue(), spec()
    subject = "u" + uuid.uuid4().hex[:10]
    good = record(subject, 1)
    with_password = {**record(subject, 2), "data": {"password": "hunter2"}}
    nested_token = {**record(subject, 3), "data": {"auth": {"access_token": "eyJ..."}}}
    no_time = {k: v for k, v in record(subject, 4).items() if k != "datetime"}
    naive_time = {**record(subject, 5), "datetime": "2026-11-22T04:14:23"}
    # A batch is refused whole: its good record is not stored either.
    spoiled_batch = json.dumps([record(subject, 6), {**record(subject, 7), "data": {"token": 1}}])
    too_many = json.dumps([record(subject, 8)] * (MAX_BATCH_RECORDS + 1))
    oversized = json.dumps(
        [record(subject, 9), {**record(subject, 10), "data": {"x": "y" * 20_000}}]
    )
    bad = [
        b"not json at all",
        b"[1, 2]",
        b"[]",
        spoiled_batch.encode(),
        too_many.encode(),
        oversized.encode(),
        with_password,
        nested_token,
        no_time,
        naive_time,
    ]
    async with asyncio.timeout(TEST_TIMEOUT):
        await queue.declare(s)
        for body in bad:
            await publish(queue, s, body)
        await publish(queue, s, good)
        async with EventConsumer(queue, documents, spec=s).running() as consumer:
            await wait_for_count(documents, subject, 1)
            await until(lambda: consumer.counters.dead_lettered >= len(bad))
        assert s.dead_letter is not None
        dead = queue.consume(s.dead_letter)
        bodies = []
        for _ in bad:
            async with asyncio.timeout(10):
                delivery = await anext(dead)
            bodies.append(delivery.body)
            await delivery.ack()
        await dead.aclose()
    expected = [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bad]
    assert sorted(bodies) == sorted(expected)
    stored = await stored_of(documents, subject)
    assert [e.event_id for e in stored] == [good["event_id"]]
    assert consumer.counters.dead_lettered == len(bad)
