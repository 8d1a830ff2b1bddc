"""The archiver's batch path: deliveries waiting together are archived with one write (up
to a msg_id already stored), then rung, then acked, with the guarantees of the one-at-a-time
path: each msg_id stored once, contiguous seq per room in queue order, a resend rung with its
seq, a msg_id reused by another room or sender dead-lettered."""

from __future__ import annotations

import asyncio
from typing import Any

from backend.archiver.archiver import _stored
from backend.chat.pipeline import Intake
from backend.stores.documents.port import DocumentStore, StoredMessage
from tests.archiver.harness import (
    TEST_TIMEOUT,
    Report,
    Rings,
    Stack,
    allow_all,
    check,
    envelope,
    new_room,
    stack,
    stored_messages,
)
from tests.archiver.test_archiver import archiver

__all__ = ["stack"]  # the fixture


async def test_a_backlog_is_archived_in_batches_once_each_and_contiguously(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        rooms = [new_room() for _ in range(3)]
        early = envelope(intake, rooms[0], "alice", "early")
        # Archived before the backlog (as an archiver would have): its resend is a duplicate.
        assert await stack.documents.insert_messages([_stored(early, 1)]) == 1
        sent = [early]
        for i in range(60):  # queued while no archiver runs: a backlog to take in batches
            sent.append(await intake.accept(envelope(intake, rooms[i % 3], "bob", str(i))))
        resend_early = await intake.accept(early)
        resend_new = await intake.accept(sent[5])
        # In the same room, hence behind the original in the same partition queue (across
        # partitions whichever is archived first keeps the msg_id).
        stolen = envelope(intake, sent[7].room, "mallory", "x", sent[7].msg_id)
        await intake.accept(stolen)
        # Behind mallory's in the same queue: once it is rung, hers was settled.
        tail = await intake.accept(envelope(intake, sent[7].room, "bob", "tail"))
        sent.append(tail)

        worker = archiver(stack, queue)
        async with Rings(stack.doorbell, rooms) as rings, worker.running():
            await rings.wait_for_ids({e.msg_id for e in sent})
            await rings.wait_for(len(sent) - 1 + 2)  # every new one, and both resends again
        stored = await stored_messages(stack.documents, rooms)
        assert check(sent, stored, rings.got) == Report()
        for room in rooms:
            in_room = [m for m in stored if m.room == room]
            assert [m.seq for m in in_room] == list(range(1, len(in_room) + 1))
            order = [e.msg_id for e in sent if e.room == room]
            assert [m.msg_id for m in in_room] == order
        seq_of = {m.msg_id: m.seq for m in stored}
        resent = [r for r in rings.got if r["msg_id"] in (early.msg_id, resend_new.msg_id)]
        assert all(r["seq"] == seq_of[r["msg_id"]] for r in resent)
        assert resend_early.msg_id == early.msg_id
        assert worker.counters.archived == len(sent) - 1
        assert worker.counters.duplicates == 2
        assert worker.counters.dead_lettered == 1  # mallory's reuse of bob's msg_id
        assert {m.msg_id for m in stored if m.sender == "mallory"} == set()
        if stack.mode == "embedded":
            # The SQLite queue hands a consumer what it claimed at once: batches are certain.
            assert worker.batches >= 1


class CountingDocuments:
    """A test double around a real document store that notes what each batch write wrote."""

    def __init__(self, inner: DocumentStore) -> None:
        self._inner = inner
        self.batches: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def insert_messages(self, batch: list[StoredMessage]) -> int:
        written = await self._inner.insert_messages(batch)
        self.batches.append([m.msg_id for m in batch[:written]])
        return written


async def test_after_a_resend_the_rest_of_a_batch_is_a_batch_again(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = stack.queue()
        intake = Intake(queue, allow_all, namespace=stack.namespace)
        room = new_room()
        first = [await intake.accept(envelope(intake, room, "bob", f"a{i}")) for i in range(10)]
        await intake.accept(first[3])  # a resend, behind its original in the same queue
        then = [await intake.accept(envelope(intake, room, "bob", f"b{i}")) for i in range(10)]
        sent = first + then
        documents = CountingDocuments(stack.documents)
        worker = archiver(stack, queue, documents)
        async with Rings(stack.doorbell, [room]) as rings, worker.running():
            await rings.wait_for(len(sent) + 1)
        stored = await stored_messages(stack.documents, [room])
        assert check(sent, stored, rings.got) == Report()
        assert [m.msg_id for m in stored] == [e.msg_id for e in sent]
        assert [m.seq for m in stored] == list(range(1, 21))
        assert (worker.counters.archived, worker.counters.duplicates) == (20, 1)
        if stack.mode == "embedded":  # all 21 were handed over at once
            written_in_batches = {msg_id for batch in documents.batches for msg_id in batch}
            assert {e.msg_id for e in then} <= written_in_batches
