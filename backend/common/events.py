"""Event records for the log service, in the seed's format.

``emit`` never blocks and never fails a user action: records go to a bounded buffer that a
background task drains into the durable queue. When the buffer is full the record is
dropped and counted, so a dead log path costs log lines, never logins. Records go out in
emission order, batched: one queue message (a JSON array) carries what a short wait
collected, so the broker confirms a batch, not each record. A refused batch is published
again, before anything newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from backend.common.logs import SENSITIVE, request_id_var
from backend.common.metrics import EventTally
from backend.stores.queue.port import DurableQueue, QueueSpec, QueueUnavailable

log = logging.getLogger("sealchat.events")

EVENTS_QUEUE = QueueSpec(
    name="sealchat.events",
    dead_letter="sealchat.events.dead",
    max_deliveries=5,
    max_length=1_000_000,
)
MAX_BATCH_RECORDS = 200
"""Records in one queue message at most."""
MAX_BATCH_BYTES = 256 * 1024
"""One queue message of records at most (a batch closes before it grows past this)."""
LINGER = 0.05
"""Seconds a batch waits for more records after its first: records reach the log this much
later, and each queue message carries several of them even at a trickle."""


def _bodies(records: list[dict[str, Any]]) -> Iterator[tuple[bytes, int]]:
    """``records`` as queue message bodies (JSON arrays) of at most ``MAX_BATCH_BYTES``
    each, with how many records each holds."""
    encoded = [json.dumps(record, separators=(",", ":")).encode() for record in records]
    start, size = 0, 2
    for end, item in enumerate(encoded):
        if end > start and size + len(item) + 1 > MAX_BATCH_BYTES:
            yield b"[" + b",".join(encoded[start:end]) + b"]", end - start
            start, size = end, 2
        size += len(item) + 1
    yield b"[" + b",".join(encoded[start:]) + b"]", len(encoded) - start


def event_record(
    server: str, category: str, subject: str, data: Mapping[str, Any], request_id: str | None
) -> dict[str, Any]:
    bad = SENSITIVE & data.keys()
    if bad:  # a programming error: fail loudly in tests rather than leak in production
        raise ValueError(f"event data must not carry {sorted(bad)}")
    return {
        "event_id": uuid.uuid4().hex,
        "datetime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "server": server,
        "category": category,
        "id": subject,
        "data": dict(data),
        "request_id": request_id,
    }


class EventPublisher:
    def __init__(
        self, queue: DurableQueue, server: str, *, buffer: int = 10_000, linger: float = LINGER
    ) -> None:
        self._queue = queue
        self._linger = linger
        self.server = server
        self._buffer: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=buffer)
        self.dropped = 0
        self.published = 0
        self.tally = EventTally()
        """Emitted records by category and outcome (metrics: auth successes, failures …)."""

    def emit(self, category: str, subject: str, **data: Any) -> None:
        record = event_record(self.server, category, subject, data, request_id_var.get())
        self.tally.add(category, data)
        try:
            self._buffer.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1

    def buffered(self) -> int:
        return self._buffer.qsize()

    async def _drain(self) -> None:
        """Publish what waits as batches: after the first record, wait ``linger`` for more,
        then publish up to ``MAX_BATCH_RECORDS`` (or ``MAX_BATCH_BYTES``) of them as one
        queue message; retry a refused batch until the queue takes it."""
        backoff = 0.2
        while True:
            batch = [await self._buffer.get()]
            if self._linger:
                await asyncio.sleep(self._linger)
            while len(batch) < MAX_BATCH_RECORDS and not self._buffer.empty():
                batch.append(self._buffer.get_nowait())
            for body, count in _bodies(batch):
                while True:
                    try:
                        await self._queue.publish(
                            EVENTS_QUEUE.name, body, message_id=uuid.uuid4().hex
                        )
                        break
                    except QueueUnavailable:
                        log.warning("event queue unavailable, retrying", extra={"records": count})
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 10.0)
                backoff = 0.2
                self.published += count
                for _ in range(count):
                    self._buffer.task_done()

    async def flush(self) -> None:
        """Wait until every buffered record is published (shutdown, tests); callers bound it."""
        await self._buffer.join()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventPublisher]:
        await self._queue.declare(EVENTS_QUEUE)
        task = asyncio.create_task(self._drain(), name=f"events-{self.server}")
        try:
            yield self
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.flush()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.dropped:
                log.warning("event records dropped", extra={"dropped": self.dropped})
