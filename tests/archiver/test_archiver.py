"""The archiver, on the embedded stores and on RabbitMQ + a MongoDB-compatible server + Redis.

Every test is bounded in time; the crash tests compare what the intake acked with what
history holds and what was rung (``check``), and a negative control shows that the checker
does see a loss when the archiver acks too early.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pymongo.errors
import pytest

from backend.archiver.app import archiver_service
from backend.archiver.archiver import Archiver
from backend.chat.pipeline import (
    Envelope,
    Intake,
    dead_letter_queue,
    partition_of,
    partition_queue,
)
from backend.common.resources import open_stores
from backend.stores.documents.port import DocumentStore, StoredMessage
from backend.stores.queue.port import Delivery, DurableQueue
from tests.archiver.harness import (
    TEST_TIMEOUT,
    Report,
    Rings,
    Stack,
    allow_all,
    check,
    envelope,
    new_msg_id,
    new_room,
    stack,
    stored_messages,
    wait_until_quiet,
    wait_until_stored,
)

__all__ = ["stack"]  # the fixture

Hook = Callable[[StoredMessage, int], Awaitable[None]]


class FaultyDocuments:
    """A test double around a real document store that runs hooks around ``insert_message``
    and around each message of ``insert_messages`` (the n-th message, counted from 1).
    Everything else goes straight to the real store."""

    def __init__(
        self, inner: DocumentStore, *, before: Hook | None = None, after: Hook | None = None
    ) -> None:
        self._inner = inner
        self._before, self._after = before, after
        self.inserts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def insert_message(self, message: StoredMessage) -> bool:
        self.inserts += 1
        n = self.inserts  # partitions insert concurrently: count this call's number now
        if self._before is not None:
            await self._before(message, n)
        inserted = await self._inner.insert_message(message)
        if self._after is not None:
            await self._after(message, n)
        return inserted

    async def insert_messages(self, batch: list[StoredMessage]) -> int:
        """The batch write, with the hooks of each of its messages around it."""
        numbers = []
        for message in batch:
            self.inserts += 1
            numbers.append(self.inserts)
        if self._before is not None:
            for message, n in zip(batch, numbers, strict=True):
                await self._before(message, n)
        inserted = await self._inner.insert_messages(batch)
        if self._after is not None:
            for message, n in zip(batch, numbers, strict=True):
                await self._after(message, n)
        return inserted


class AckFirstArchiver(Archiver):
    """A broken archiver for the negative control: it acks before it writes."""

    async def handle(self, delivery: Delivery) -> None:
        await delivery.ack()
        await self.commit(Envelope.decode(delivery.body))

    async def handle_batch(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            await self.handle(delivery)


def archiver(stack: Stack, queue: DurableQueue, documents: Any = None, **kw: Any) -> Archiver:
    return Archiver(
        queue,
        documents or stack.documents,
        stack.doorbell,
        namespace=stack.namespace,
        retry_delay=0.01,
        max_retry_delay=0.05,
        **kw,
    )


async def send_all(intake: Intake, rooms: list[str], senders: int, each: int) -> list[Envelope]:
    """Every sender of every room sends ``each`` messages one after the other, all senders
    at once; returns the acked envelopes."""
    sent: list[Envelope] = []

    async def sender(room: str, name: str) -> None:
        for i in range(each):
            sent.append(await intake.accept(envelope(intake, room, name, f"{name}-{i}")))

    await asyncio.gather(*(sender(room, f"user{j}") for room in rooms for j in range(senders)))
    return sent


def assert_sender_order(sent: list[Envelope], stored: list[StoredMessage]) -> None:
    wanted: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in sent:
        wanted[e.room, e.sender].append(e.msg_id)
    got: dict[tuple[str, str], list[str]] = defaultdict(list)
    for m in sorted(stored, key=lambda m: (m.room, m.seq)):
        got[m.room, m.sender].append(m.msg_id)
    for key in wanted:
        if got[key] != wanted[key]:
            pos = {m: i for i, m in enumerate(wanted[key])}
            print("DEBUG", key, [pos.get(m) for m in got[key]])
    assert got == wanted


async def test_rooms_are_archived_contiguously_in_sender_order(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        rooms = [new_room() for _ in range(4)]
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        worker = archiver(stack, queue)
        async with Rings(stack.doorbell, rooms) as rings, worker.running():
            sent = await send_all(intake, rooms, senders=4, each=50)
            await rings.wait_for(800)
        stored = await stored_messages(stack.documents, rooms)
        assert check(sent, stored, rings.got) == Report()
        for room in rooms:
            assert [m.seq for m in stored if m.room == room] == list(range(1, 201))
        assert_sender_order(sent, stored)
        assert len(rings.got) == 800 == len({r["msg_id"] for r in rings.got})  # one each
        assert rings.resyncs == []
        assert worker.counters.as_dict() == {
            "archived": 800,
            "duplicates": 0,
            "dead_lettered": 0,
            "retries": 0,
            "ring_failures": 0,
        }


async def test_a_resent_msg_id_is_stored_once_and_rung_with_the_same_seq(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        room = new_room()
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        first = envelope(intake, room, "alice", "hello")
        second = envelope(intake, room, "alice", "again")
        worker = archiver(stack, queue)
        async with Rings(stack.doorbell, [room]) as rings, worker.running():
            await intake.accept(first)
            await intake.accept(first)  # resent before it was archived
            await intake.accept(second)
            await rings.wait_for(3)
            await intake.accept(first)  # resent long after
            await rings.wait_for(4)
        stored = await stored_messages(stack.documents, [room])
        assert [(m.msg_id, m.seq) for m in stored] == [(first.msg_id, 1), (second.msg_id, 2)]
        assert [(r["msg_id"], r["seq"]) for r in rings.got] == [
            (first.msg_id, 1),
            (first.msg_id, 1),
            (second.msg_id, 2),
            (first.msg_id, 1),
        ]
        assert (worker.counters.archived, worker.counters.duplicates) == (2, 2)


async def test_a_msg_id_reused_in_another_room_is_dead_lettered(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        room, other = new_room(), new_room()
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        original = envelope(intake, room, "alice", "mine")
        worker = archiver(stack, queue)
        async with worker.running():
            await intake.accept(original)
            await wait_until_stored(stack.documents, {room: 1})
            await intake.accept(envelope(intake, other, "mallory", "x", original.msg_id))
            await intake.accept(envelope(intake, other, "mallory", "y"))
            await wait_until_stored(stack.documents, {other: 1})
        assert worker.counters.dead_lettered == 1
        stored = await stored_messages(stack.documents, [room, other])
        assert [(m.room, m.seq, m.ciphertext) for m in stored] == [
            (room, 1, "ct:mine"),
            (other, 1, "ct:y"),
        ]


@pytest.mark.parametrize("crash", ["between_insert_and_ack", "anywhere"])
async def test_a_crashed_archiver_loses_duplicates_and_skips_nothing(
    stack: Stack, crash: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        rooms = [new_room() for _ in range(4)]
        crashed_queue = stack.queue()
        intake = Intake(crashed_queue, allow_all, namespace=stack.namespace)
        sent = await send_all(intake, rooms, senders=2, each=50)
        crashed = asyncio.Event()

        async def freeze_after(message: StoredMessage, n: int) -> None:
            if n == 150:  # stored, neither rung nor acked: the worst moment to die
                crashed.set()
                await asyncio.Event().wait()

        async def freeze_before(message: StoredMessage, n: int) -> None:
            if n >= 150:  # the other partitions are wherever they are when we cut
                crashed.set()
                await asyncio.Event().wait()  # a batch archives fast: hold it until the cut

        if crash == "between_insert_and_ack":
            documents = FaultyDocuments(stack.documents, after=freeze_after)
        else:
            documents = FaultyDocuments(stack.documents, before=freeze_before)
        first = archiver(stack, crashed_queue, documents)
        async with Rings(stack.doorbell, rooms) as rings:
            async with first.running():
                await crashed.wait()
                # The process dies: its connection (or its hold on the file) goes, unacked.
                await crashed_queue.close()
            assert first.counters.archived < 400
            second = archiver(stack, stack.queue())
            async with second.running():
                await wait_until_stored(stack.documents, dict.fromkeys(rooms, 100))
                stored = await stored_messages(stack.documents, rooms)
                await rings.wait_for_ids({m.msg_id for m in stored})
        assert check(sent, stored, rings.got) == Report()
        if stack.mode == "embedded":
            # RabbitMQ 3.x may give the new consumer newer messages before the ones the
            # crashed consumer held (see the queue contract): seq stays contiguous, but the
            # messages in flight at the crash can change places.
            assert_sender_order(sent, stored)
        if crash == "between_insert_and_ack":
            assert second.counters.duplicates >= 1  # the frozen one, stored but not acked


async def test_negative_control_an_archiver_that_acks_first_loses_messages(
    stack: Stack,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        rooms = [new_room() for _ in range(2)]
        crashed_queue = stack.queue()
        intake = Intake(crashed_queue, allow_all, namespace=stack.namespace)
        sent = await send_all(intake, rooms, senders=1, each=40)
        crashed = asyncio.Event()

        async def freeze_before(message: StoredMessage, n: int) -> None:
            if n == 30:  # acked, not yet stored
                crashed.set()
                await asyncio.Event().wait()

        broken = AckFirstArchiver(
            crashed_queue,
            FaultyDocuments(stack.documents, before=freeze_before),
            stack.doorbell,
            namespace=stack.namespace,
        )
        async with Rings(stack.doorbell, rooms) as rings:
            async with broken.running():
                await crashed.wait()
                await crashed_queue.close()
            async with archiver(stack, stack.queue()).running():
                await wait_until_quiet(stack.documents, rooms)
        report = check(sent, await stored_messages(stack.documents, rooms), rings.got)
        assert report.lost >= 1


async def test_poison_messages_are_dead_lettered_and_the_room_keeps_flowing(
    stack: Stack,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        room = new_room()
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        await intake.declare()
        partition = partition_queue(partition_of(room, intake.partitions), stack.namespace)
        good = [envelope(intake, room, "alice", str(i)) for i in range(4)]
        unstorable = envelope(intake, room, "alice", "unstorable")
        bad_id = json.loads(good[0].encode()) | {"msg_id": "not-128-bits"}
        attempts: list[int] = []

        async def refuse(message: StoredMessage, n: int) -> None:
            if message.msg_id == unstorable.msg_id:
                attempts.append(n)
                raise ValueError("this store will never take it")

        await intake.accept(good[0])
        await queue.publish(partition, b"\xffnot json", message_id="garbage")
        await queue.publish(partition, json.dumps(bad_id).encode(), message_id="bad-id")
        await intake.accept(good[1])
        await intake.accept(unstorable)
        await intake.accept(good[2])
        await intake.accept(good[3])
        worker = archiver(
            stack, queue, FaultyDocuments(stack.documents, before=refuse), max_attempts=3
        )
        async with worker.running():
            await wait_until_stored(stack.documents, {room: 4})
            dead: list[bytes] = []
            async with contextlib.aclosing(queue.consume(dead_letter_queue(stack.namespace))) as dl:
                while len(dead) < 3:
                    delivery = await anext(dl)
                    dead.append(delivery.body)
                    await delivery.ack()
        stored = await stored_messages(stack.documents, [room])
        assert [(m.seq, m.msg_id) for m in stored] == [
            (i + 1, e.msg_id) for i, e in enumerate(good)
        ]
        # Bounded: max_attempts one at a time, after one batch write if it came in a batch.
        assert len(attempts) in (3, 4)
        assert dead[:2] == [b"\xffnot json", json.dumps(bad_id).encode()]
        assert Envelope.decode(dead[2]) == unstorable
        assert worker.counters.dead_lettered == 3


async def test_an_unreachable_store_is_retried_in_place_not_dead_lettered(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        room = new_room()
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        sent = [envelope(intake, room, "alice", str(i)) for i in range(3)]
        outage: list[int] = []

        async def unreachable(message: StoredMessage, n: int) -> None:
            if len(outage) < 8:  # longer than max_attempts: an outage is not the message's fault
                outage.append(n)
                raise pymongo.errors.AutoReconnect("connection refused")

        worker = archiver(
            stack, queue, FaultyDocuments(stack.documents, before=unreachable), max_attempts=2
        )
        async with Rings(stack.doorbell, [room]) as rings, worker.running():
            for e in sent:
                await intake.accept(e)
            await rings.wait_for(3)
        stored = await stored_messages(stack.documents, [room])
        assert check(sent, stored, rings.got) == Report()
        assert [m.msg_id for m in stored] == [e.msg_id for e in sent]
        assert (worker.counters.dead_lettered, worker.counters.retries) == (0, 8)


async def test_archiver_service_runs_on_the_stores_and_stops_cleanly(make_settings: Any) -> None:
    settings = make_settings()
    async with asyncio.timeout(TEST_TIMEOUT), open_stores(settings, documents=True) as stores:
        assert stores.documents is not None
        room = new_room()
        intake = Intake(stores.queue, allow_all)
        async with archiver_service(settings, stores) as running:
            accepted = await intake.accept(envelope(intake, room, "alice", "hi"))
            await wait_until_stored(stores.documents, {room: 1})
            assert running.counters.archived == 1
        found = await stores.documents.find_message(accepted.msg_id)
        assert found is not None and found.seq == 1
        tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("archiver-")]
        assert tasks == []


def test_the_checker_counts_each_kind_of_damage() -> None:
    intake = Intake(None, allow_all)  # type: ignore[arg-type]  # only builds envelopes
    room = new_room()
    sent = [envelope(intake, room, "alice", str(i)) for i in range(4)]

    def stored(e: Envelope, seq: int, **change: Any) -> StoredMessage:
        fields = {
            "room": e.room,
            "seq": seq,
            "msg_id": e.msg_id,
            "sender": e.sender,
            "device": e.device,
            "ts": e.ts,
            "ciphertext": e.ciphertext,
            "kind": e.kind,
        }
        return StoredMessage(**(fields | change))

    def ring(m: StoredMessage) -> dict[str, Any]:
        return {"type": "committed", "room": m.room, "seq": m.seq, "msg_id": m.msg_id}

    good = [stored(e, i + 1) for i, e in enumerate(sent)]
    assert check(sent, good, map(ring, good)) == Report()
    # sent[1] and sent[3] lost, sent[2] stored twice, holes at 2 and 5, a stranger,
    # a ring with a wrong seq, two stored messages never rung
    stranger = stored(sent[0], 6, msg_id=new_msg_id())
    damaged = [good[0], stored(sent[2], 3), stored(sent[2], 4), stranger]
    rings = [ring(good[0]), ring(stored(sent[2], 9))]
    assert check(sent, damaged, rings) == Report(
        lost=2, duplicated=1, holes=2, unexpected=2, unrung=2
    )
