"""The message pipeline's stores in both modes, a ring collector, and the loss checker.

``stack`` builds the embedded adapters (SQLite queue and documents, in-process doorbell) or
the production ones on the real servers (RabbitMQ, a MongoDB-compatible server, Redis). Each
test gets its own queue namespace, database and key prefix, so tests never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backend.chat.history import commit_channel
from backend.chat.pipeline import DEFAULT_PARTITIONS, Envelope, Intake, partition_of
from backend.stores.documents.port import DocumentStore, StoredMessage
from backend.stores.ephemeral.port import Doorbell, Resync, Ring
from backend.stores.queue.port import DurableQueue
from tests.contracts.documents import drop_mongo_database

TEST_TIMEOUT = 60.0


@dataclass
class Stack:
    mode: str
    documents: DocumentStore
    doorbell: Doorbell
    open_queue: Callable[[], DurableQueue]
    """A new queue adapter on the same store: what a restarted process opens."""
    namespace: str = field(default_factory=lambda: f"sealchat.test.msg.{uuid.uuid4().hex[:10]}")
    opened: list[DurableQueue] = field(default_factory=list)

    def queue(self) -> DurableQueue:
        queue = self.open_queue()
        self.opened.append(queue)
        return queue


MODES = ["embedded", pytest.param("cluster", marks=[pytest.mark.rabbitmq, pytest.mark.mongo])]


@pytest.fixture(params=MODES)
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    async with contextlib.AsyncExitStack() as exits:
        if request.param == "embedded":
            from backend.stores.documents.sqlite import SqliteDocumentStore
            from backend.stores.ephemeral.memory import MemoryDoorbell
            from backend.stores.queue.embedded import SqliteQueue

            documents: DocumentStore = SqliteDocumentStore(tmp_path / "documents.sqlite3")
            doorbell: Doorbell = MemoryDoorbell()
            path = tmp_path / "queue.sqlite3"

            def open_queue() -> DurableQueue:
                return SqliteQueue(path)
        else:
            from backend.stores.documents.mongo import MongoDocumentStore
            from backend.stores.ephemeral.redis import open_redis
            from backend.stores.queue.rabbitmq import RabbitQueue

            url = request.getfixturevalue("rabbitmq_url")
            mongo_url = request.getfixturevalue("mongo_url")
            database = request.getfixturevalue("mongo_database")
            prefix = request.getfixturevalue("redis_prefix") + uuid.uuid4().hex[:6] + ":"
            kv, doorbell = open_redis(request.getfixturevalue("redis_url"), prefix)
            exits.push_async_callback(kv.close)
            documents = MongoDocumentStore(mongo_url, database)
            exits.callback(drop_mongo_database, mongo_url, database)

            def open_queue() -> DurableQueue:
                return RabbitQueue(url)

        exits.push_async_callback(doorbell.close)
        exits.push_async_callback(documents.close)
        await documents.setup()
        stack = Stack(request.param, documents, doorbell, open_queue)
        try:
            yield stack
        finally:
            for queue in stack.opened:
                await queue.close()


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


def new_msg_id() -> str:
    return uuid.uuid4().hex


async def allow_all(room: str, user: str) -> bool:
    return True


def envelope(intake: Intake, room: str, sender: str, text: str, msg_id: str = "") -> Envelope:
    return intake.envelope(
        msg_id=msg_id or new_msg_id(),
        room=room,
        sender=sender,
        device="DEVICE1",
        ciphertext=f"ct:{text}",
    )


class Rings:
    """Collects the "committed" rings of some rooms from a doorbell subscription."""

    def __init__(
        self, doorbell: Doorbell, rooms: Iterable[str], partitions: int = DEFAULT_PARTITIONS
    ) -> None:
        self._doorbell = doorbell
        self._rooms = set(rooms)
        self._channels = sorted({commit_channel(partition_of(r, partitions)) for r in self._rooms})
        self.got: list[dict[str, Any]] = []
        self.resyncs: list[str] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Rings:
        live = asyncio.Event()
        self._task = asyncio.create_task(self._collect(live))
        async with asyncio.timeout(10):
            await live.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _collect(self, live: asyncio.Event) -> None:
        subscription = self._doorbell.subscribe(*self._channels)
        async with contextlib.aclosing(subscription):  # type: ignore[type-var]
            async for item in subscription:
                if isinstance(item, Resync):
                    if item.reason == "subscribed":
                        live.set()
                    else:
                        self.resyncs.append(item.reason)
                elif isinstance(item, Ring):
                    ring = json.loads(item.payload)
                    if ring.get("room") in self._rooms:  # a channel carries other rooms too
                        self.got.append(ring)
                self._changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.got) < count:
            self._changed.clear()
            await self._changed.wait()

    async def wait_for_ids(self, msg_ids: set[str]) -> None:
        while not msg_ids <= {ring["msg_id"] for ring in self.got}:
            self._changed.clear()
            await self._changed.wait()


async def stored_messages(documents: DocumentStore, rooms: Iterable[str]) -> list[StoredMessage]:
    found: list[StoredMessage] = []
    for room in rooms:
        after = 0
        while page := await documents.messages_after(room, after, 500):
            found.extend(page)
            after = page[-1].seq
    return found


async def wait_until_stored(documents: DocumentStore, expected: dict[str, int]) -> None:
    """Poll until every room holds at least the expected number of messages."""
    while True:
        latest = await documents.latest_seq(list(expected))
        if all(latest[room] >= count for room, count in expected.items()):
            return
        await asyncio.sleep(0.05)


async def wait_until_quiet(documents: DocumentStore, rooms: Sequence[str]) -> None:
    """Poll until nothing new was archived for a second."""
    previous: dict[str, int] | None = None
    while True:
        latest = await documents.latest_seq(list(rooms))
        if latest == previous:
            return
        previous = latest
        await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Report:
    lost: int = 0
    """Acked messages that are not in history."""
    duplicated: int = 0
    """History entries beyond the first for one msg_id."""
    holes: int = 0
    """Missing seq numbers below a room's highest one."""
    unexpected: int = 0
    """History entries nobody sent, or that changed on the way, and rings that disagree
    with history (another seq, or a message that is not stored)."""
    unrung: int = 0
    """Stored messages that no ring announced."""


def check(
    sent: Iterable[Envelope], stored: Iterable[StoredMessage], rings: Iterable[dict[str, Any]]
) -> Report:
    """Compare what the intake acked with what history holds and what the doorbell rang."""
    sent_by_id = {e.msg_id: e for e in sent}
    stored = list(stored)
    by_id: dict[str, list[StoredMessage]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    for message in stored:
        by_id[message.msg_id].append(message)
        seqs[message.room].append(message.seq)
    lost = sum(1 for msg_id in sent_by_id if msg_id not in by_id)
    duplicated = sum(len(copies) - 1 for copies in by_id.values())
    duplicated += sum(n - 1 for room in seqs for n in Counter(seqs[room]).values() if n > 1)
    holes = sum(max(s) - len(set(s)) for s in seqs.values())
    unexpected = 0
    for msg_id, copies in by_id.items():
        original = sent_by_id.get(msg_id)
        if original is None or any(
            (m.room, m.sender, m.device, m.ciphertext, m.ts, m.kind)
            != (
                original.room,
                original.sender,
                original.device,
                original.ciphertext,
                original.ts,
                original.kind,
            )
            for m in copies
        ):
            unexpected += 1
    rung: set[str] = set()
    for ring in rings:
        copies = by_id.get(ring.get("msg_id", ""), [])
        if ring.get("type") != "committed" or not any(
            (m.room, m.seq) == (ring.get("room"), ring.get("seq")) for m in copies
        ):
            unexpected += 1
        else:
            rung.add(ring["msg_id"])
    unrung = sum(1 for msg_id in by_id if msg_id not in rung)
    return Report(lost, duplicated, holes, unexpected, unrung)
