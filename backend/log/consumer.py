"""The log service's consumer: ``sealchat.events`` → ``logdata``, acked only after the write.

A queue message holds a batch of records (``EventPublisher``), stored in one write (one
transaction on SQLite, one unordered ``insert_many`` on MongoDB). At least once: a message
is acked after that write, so a crash in between delivers it again, and ``insert_events``
skips the repeats by ``event_id`` (once in the log). A message with a malformed record is
dead-lettered whole at once (``sealchat.events.dead``, for an operator to read). A store that
is down is waited out in place with backoff, never handed back: a returned message counts
towards the delivery limit and would be dead-lettered for an outage that is not its fault.
Any other failure is retried a few times, then dead-lettered.

The queue adapter does the rest: manual acks, ``prefetch`` unsettled at most, and on RabbitMQ
re-attaching (with the adapter's backoff) after a lost connection; what the lost channel held
comes back from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from backend.common.events import EVENTS_QUEUE
from backend.common.metrics import Lag
from backend.common.tasks import stop_if_cancelled
from backend.log.records import MalformedEvent, parse_events
from backend.stores.documents.port import DocumentStore, EventRecord
from backend.stores.errors import store_unavailable
from backend.stores.queue.port import Delivery, DurableQueue, QueueSpec, QueueUnavailable

log = logging.getLogger("sealchat.log")


@dataclass(slots=True)
class ConsumerCounters:
    """Totals since start, for metrics."""

    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    restarts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class EventConsumer:
    """Consumes the events queue into the document store until cancelled."""

    def __init__(
        self,
        queue: DurableQueue,
        documents: DocumentStore,
        *,
        prefetch: int = 64,
        max_attempts: int = 5,
        retry_delay: float = 0.1,
        max_retry_delay: float = 5.0,
        spec: QueueSpec = EVENTS_QUEUE,
    ) -> None:
        if prefetch < 1 or max_attempts < 1:
            raise ValueError("prefetch and max_attempts must be at least 1")
        self._queue = queue
        self._documents = documents
        self._prefetch = prefetch
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self.spec = spec
        self.queue_name = spec.name
        self.counters = ConsumerCounters()
        self.lag = Lag()
        self._seen = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventConsumer]:
        """Consume until the block exits; what is held unacked then goes back to the queue."""
        await self._queue.declare(self.spec)
        task = asyncio.create_task(self.consume(), name="log-consumer")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def consume(self) -> None:
        delay = self._retry_delay
        while True:
            try:
                deliveries = self._queue.consume(self.queue_name, prefetch=self._prefetch)
                async with contextlib.aclosing(deliveries):
                    async for delivery in deliveries:
                        await self.handle(delivery)
                        stop_if_cancelled()
                        delay = self._retry_delay
                return  # the adapter closed
            except QueueUnavailable as exc:
                log.warning("events queue unavailable", extra={"error": str(exc)})
            except Exception as exc:
                stop_if_cancelled()  # a store client turned our cancellation into its error
                # A bug: the held records go back (each counted as a delivery); start again.
                log.error("log consumer failed; restarting", extra={"error": type(exc).__name__})
            self.counters.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def handle(self, delivery: Delivery) -> None:
        """Store the records of one queue message in one write, then settle it (ack, or
        dead-letter what cannot be stored)."""
        try:
            records = parse_events(delivery.body)
        except MalformedEvent as exc:
            await self._dead_letter(delivery, str(exc))
            return
        self._seen += 1
        token = self._seen
        self.lag.begin(token, min(record.datetime.timestamp() for record in records))
        try:
            stored = await self._store_retrying(records)
        finally:
            self.lag.end(token)
        if stored is None:
            # What was stored of it stays; a replay from the dead-letter queue dedupes.
            await self._dead_letter(delivery, "cannot be stored")
            return
        self.counters.stored += stored
        self.counters.duplicates += len(records) - stored
        await delivery.ack()

    async def _store_retrying(self, records: list[EventRecord]) -> int | None:
        """How many of ``records`` were new; None after giving up. A batch that failed is
        stored again whole: what went in the first time is skipped as a repeat."""
        failures = 0
        delay = self._retry_delay
        while True:
            try:
                return await self._documents.insert_events(records)
            except Exception as exc:
                self.counters.retries += 1
                first = records[0].event_id
                if not store_unavailable(exc):
                    failures += 1
                    if failures >= self._max_attempts:
                        log.error(
                            "giving up on a batch of event records",
                            extra={
                                "event_id": first,
                                "records": len(records),
                                "error": type(exc).__name__,
                            },
                        )
                        return None
                log.warning(
                    "storing event records failed; retrying",
                    extra={"event_id": first, "records": len(records), "error": type(exc).__name__},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.counters.dead_lettered += 1
        log.warning(
            "event record dead-lettered",
            extra={"message_id": (delivery.message_id or "")[:64], "reason": reason},
        )
        await delivery.nack(requeue=False)
