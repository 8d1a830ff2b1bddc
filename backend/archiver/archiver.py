"""The archiver: partition queues → message history, with contiguous per-room ``seq``.

For each delivery, in queue order: parse (a malformed envelope is dead-lettered at once),
skip a ``msg_id`` already archived (ringing it again: the first ring may have been lost in a
crash), else store it as ``seq = latest_seq(room) + 1``, ring the partition's commit channel
(``committed.{p}``, see ``commit_channel``), and only then ack. Each partition queue has a
single active consumer, so the archiver holding it is the only writer of its rooms: the seq
needs no counter, and a crash between choosing a seq and storing the message leaves no hole.
What the consumer already received is handled as one batch (``handle_batch``): one write
(every message taken for new: a resend is the exception, and the unique msg_id index finds
it), then every ring, then every ack; the same order of steps, paid once per batch.
The unique ``(room, seq)`` index catches a second writer anyway (a consumer that lost the
broker but not the database): the insert fails, the cached seq is dropped, and the retry
reads the record again.

Failures: a store that is unreachable is retried in place for as long as it takes (never
handing the message back: a returned message counts towards its dead-letter limit and would
lose its place in the room's order); any other error is retried ``max_attempts`` times, then
the message is dead-lettered so the room keeps flowing. Exception texts are never logged:
a database error's text can quote the statement's parameters, ciphertext included.

Order: a room's seq follows its partition queue's order. Across a hand-over (crash or
restart) the SQLite queue redelivers what the old consumer held first; RabbitMQ 3.x quorum
queues may not (the new consumer can get newer messages before the returned ones), so the
messages in flight at that moment can swap places. Nothing is lost, repeated or skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from backend.chat.history import commit_channel, committed_ring
from backend.chat.pipeline import (
    DEFAULT_PARTITIONS,
    NAMESPACE,
    Envelope,
    MalformedEnvelope,
    partition_of,
    partition_queue,
    partition_specs,
)
from backend.common.events import EventPublisher
from backend.common.metrics import Lag, latency_histogram
from backend.common.tasks import stop_if_cancelled, stop_tasks
from backend.stores.documents.port import DocumentStore, StoredMessage
from backend.stores.ephemeral.port import Doorbell, Ring
from backend.stores.errors import store_unavailable
from backend.stores.queue.port import Delivery, DurableQueue, QueueUnavailable

log = logging.getLogger("sealchat.archiver")

SEQ_CACHE_ROOMS = 100_000
"""Rooms whose last seq is remembered; older entries are read again from the store."""


@dataclass(slots=True)
class ArchiverCounters:
    """Totals since start, for metrics."""

    archived: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    ring_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Archiver:
    """Consumes every partition queue and archives what it gets."""

    def __init__(
        self,
        queue: DurableQueue,
        documents: DocumentStore,
        doorbell: Doorbell,
        partitions: int = DEFAULT_PARTITIONS,
        *,
        prefetch: int = 128,
        max_attempts: int = 5,
        retry_delay: float = 0.1,
        max_retry_delay: float = 5.0,
        ring_attempts: int = 3,
        namespace: str = NAMESPACE,
        events: EventPublisher | None = None,
    ) -> None:
        if max_attempts < 1 or ring_attempts < 1:
            raise ValueError("max_attempts and ring_attempts must be at least 1")
        self._queue = queue
        self._documents = documents
        self._doorbell = doorbell
        self._specs = partition_specs(partitions, namespace)
        self.partitions = partitions
        self.namespace = namespace
        self._prefetch = prefetch
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._ring_attempts = ring_attempts
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self.counters = ArchiverCounters()
        self.batches = 0
        """Batches archived with one write (``handle_batch``)."""
        self.events = events
        """Where ``archive`` and ``dead-letter`` records go (None: nowhere, e.g. tests)."""
        self.lag = Lag()
        self.latency = latency_histogram(
            "archiver_commit_latency_seconds", "From the intake's timestamp to the archive write"
        )

    async def declare(self) -> None:
        for spec in self._specs:
            await self._queue.declare(spec)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Archiver]:
        """Consume every partition until the block exits; unacked messages go back."""
        await self.declare()
        tasks = [
            asyncio.create_task(self.consume(p), name=f"archiver-{p}")
            for p in range(self.partitions)
        ]
        try:
            yield self
        finally:
            await stop_tasks(tasks)

    async def consume(self, partition: int) -> None:
        """Archive one partition's deliveries until the queue adapter closes: one at a time,
        or everything already received together (``handle_batch``)."""
        name = partition_queue(partition, self.namespace)
        delay = self._retry_delay
        while True:
            try:
                deliveries = self._queue.consume(name, prefetch=self._prefetch)
                async with contextlib.aclosing(deliveries):
                    async for delivery in deliveries:
                        batch = [delivery, *deliveries.ready(self._prefetch - 1)]
                        if len(batch) == 1:
                            await self.handle(delivery)
                        else:
                            await self.handle_batch(batch)
                        stop_if_cancelled()
                        delay = self._retry_delay
                return  # the adapter closed
            except QueueUnavailable as exc:
                log.warning("partition queue unavailable", extra={"queue": name, "error": str(exc)})
            except Exception as exc:
                stop_if_cancelled()  # a store client turned our cancellation into its error
                # A bug: the held messages go back (each counted as a delivery) and we restart.
                # No traceback: an exception's text could quote ciphertext.
                log.error(
                    "archiver failed; restarting the partition",
                    extra={"queue": name, "error": type(exc).__name__},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def handle(self, delivery: Delivery) -> None:
        """Archive one delivery, then settle it (ack, or dead-letter a poison message)."""
        envelope = await self._decode(delivery)
        if envelope is not None:
            await self._archive(delivery, envelope)

    async def handle_batch(self, deliveries: list[Delivery]) -> None:
        """Archive ``deliveries`` (one partition's, in queue order) with one write, then ring
        each, then ack each. The write takes every message for new and stops at the first
        msg_id already stored (a resend, or a reuse by another room or sender): that one
        goes the one-at-a-time way, and the rest is a batch again. After a store error all
        the rest goes one at a time, which absorbs whatever of it was written."""
        pending = [
            (delivery, envelope)
            for delivery in deliveries
            if (envelope := await self._decode(delivery)) is not None
        ]
        while pending:
            stored = await self._write_batch(pending)
            if stored is None:
                for delivery, envelope in pending:
                    await self._archive(delivery, envelope)
                return
            if stored:
                self.batches += 1
                await self._ring_batch(stored)
                await asyncio.gather(*(delivery.ack() for delivery, _ in pending[: len(stored)]))
            if len(stored) < len(pending):
                await self._archive(*pending[len(stored)])
            pending = pending[len(stored) + 1 :]

    async def _write_batch(
        self, batch: list[tuple[Delivery, Envelope]]
    ) -> list[StoredMessage] | None:
        """``_commit_batch`` with the lag tracked; None after a store error."""
        for delivery, envelope in batch:
            self.lag.begin(id(delivery), envelope.ts.timestamp())
        try:
            return await self._commit_batch([envelope for _, envelope in batch])
        except Exception as exc:
            # No traceback: an exception's text could quote ciphertext.
            log.warning("batch not archived; one at a time", extra={"error": type(exc).__name__})
            self.counters.retries += 1
            for envelope in {envelope.room: envelope for _, envelope in batch}.values():
                self._last_seq.pop(envelope.room, None)  # re-read the record
            return None
        finally:
            for delivery, _ in batch:
                self.lag.end(id(delivery))

    async def _commit_batch(self, envelopes: list[Envelope]) -> list[StoredMessage]:
        """Store ``envelopes`` as new messages in one write, up to the first whose msg_id is
        stored already; the stored ones (a prefix of ``envelopes``, in order)."""
        rooms = {e.room for e in envelopes}
        next_seq = {room: self._last_seq[room] for room in rooms if room in self._last_seq}
        next_seq.update(await self._documents.latest_seq(sorted(rooms - next_seq.keys())))
        fresh: list[StoredMessage] = []
        for envelope in envelopes:
            next_seq[envelope.room] += 1
            fresh.append(_stored(envelope, next_seq[envelope.room]))
        written = fresh[: await self._documents.insert_messages(fresh)]
        now = time.time()
        for message in written:
            self._archived(message, now)
        return written

    def _archived(self, message: StoredMessage, now: float) -> None:
        """Note a newly stored message: its room's seq, the counters, its event record."""
        self._remember(message.room, message.seq)
        self.counters.archived += 1
        self.latency.observe(max(0.0, now - message.ts.timestamp()))
        self._emit(
            "archive", message.sender, room=message.room, seq=message.seq, msg_id=message.msg_id
        )

    async def _decode(self, delivery: Delivery) -> Envelope | None:
        """The delivery's envelope; None once a malformed one is dead-lettered."""
        try:
            envelope = Envelope.decode(delivery.body)
        except MalformedEnvelope as exc:
            await self._dead_letter(delivery, str(exc))
            return None
        if delivery.redelivered:
            # A consumer before us may have written this room since we cached its seq.
            self._last_seq.pop(envelope.room, None)
        return envelope

    async def _archive(self, delivery: Delivery, envelope: Envelope) -> None:
        self.lag.begin(id(delivery), envelope.ts.timestamp())
        try:
            stored = await self._commit_retrying(envelope)
        finally:
            self.lag.end(id(delivery))
        if stored is None:
            await self._dead_letter(delivery, "cannot be archived", envelope.msg_id)
            return
        await delivery.ack()

    async def commit(self, envelope: Envelope) -> StoredMessage | None:
        """Store ``envelope`` once and ring it; the stored message, or None for a msg_id that
        another room or sender already used (not a resend: it cannot be stored). Taken for
        new first: a resend is the exception, and the unique msg_id index finds it."""
        seq = await self._next_seq(envelope.room)
        message = _stored(envelope, seq)
        if await self._documents.insert_message(message):
            self._archived(message, time.time())
            await self._ring(message)
            return message
        existing = await self._documents.find_message(envelope.msg_id)
        if existing is None:
            raise LookupError("an existing msg_id vanished during the insert")
        if (existing.room, existing.sender) != (envelope.room, envelope.sender):
            return None
        self.counters.duplicates += 1
        await self._ring(existing)
        return existing

    async def _commit_retrying(self, envelope: Envelope) -> StoredMessage | None:
        failures = 0
        delay = self._retry_delay
        while True:
            try:
                return await self.commit(envelope)
            except Exception as exc:
                self._last_seq.pop(envelope.room, None)  # re-read the record next time
                self.counters.retries += 1
                if not store_unavailable(exc):
                    failures += 1
                    if failures >= self._max_attempts:
                        log.error(
                            "giving up on a message",
                            extra={"msg_id": envelope.msg_id, "error": type(exc).__name__},
                        )
                        return None
                log.warning(
                    "archiving failed; retrying",
                    extra={"msg_id": envelope.msg_id, "error": type(exc).__name__},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def _next_seq(self, room: str) -> int:
        last = self._last_seq.get(room)
        if last is None:
            last = (await self._documents.latest_seq([room]))[room]
            self._remember(room, last)
        return last + 1

    def _remember(self, room: str, seq: int) -> None:
        self._last_seq[room] = seq
        self._last_seq.move_to_end(room)
        if len(self._last_seq) > SEQ_CACHE_ROOMS:
            self._last_seq.popitem(last=False)

    async def _ring(self, message: StoredMessage) -> None:
        await self._ring_batch([message])

    async def _ring_batch(self, messages: list[StoredMessage]) -> None:
        """Ring, in one round trip, retrying briefly. The doorbell is not the record: after a
        failed ring the members catch up from history at their next message, Resync or
        reconnect. A retry rings the whole batch again: a member may get a message twice,
        and keeps it once (by seq)."""
        rings = [
            Ring(commit_channel(partition_of(m.room, self.partitions)), committed_ring(m))
            for m in messages
        ]
        delay = self._retry_delay
        for attempt in range(1, self._ring_attempts + 1):
            try:
                await self._doorbell.ring_many(rings)
                return
            except Exception as exc:
                if attempt == self._ring_attempts:
                    self.counters.ring_failures += len(rings)
                    log.warning(
                        "could not ring committed messages",
                        extra={
                            "msg_ids": [m.msg_id for m in messages[:10]],
                            "messages": len(rings),
                            "error": type(exc).__name__,
                        },
                    )
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    def _emit(self, category: str, subject: str, **data: object) -> None:
        if self.events is not None:
            self.events.emit(category, subject, **data)

    async def _dead_letter(
        self, delivery: Delivery, reason: str, msg_id: str | None = None
    ) -> None:
        self.counters.dead_lettered += 1
        log.warning(
            "message dead-lettered",
            extra={"msg_id": msg_id or delivery.message_id, "reason": reason},
        )
        self._emit("dead-letter", "archiver", msg_id=msg_id or delivery.message_id, reason=reason)
        await delivery.nack(requeue=False)


def _stored(envelope: Envelope, seq: int) -> StoredMessage:
    return StoredMessage(
        room=envelope.room,
        seq=seq,
        msg_id=envelope.msg_id,
        sender=envelope.sender,
        device=envelope.device,
        ts=envelope.ts,
        ciphertext=envelope.ciphertext,
        kind=envelope.kind,
        expires_at=envelope.expires_at,
    )
