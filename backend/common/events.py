"""Event records for the log service, in the seed's format.

``emit`` never blocks and never fails a user action: records go to a bounded buffer that a
background task drains into the durable queue. When the buffer is full the record is
dropped and counted, so a dead log path costs log lines, never logins. Records go out in
emission order; after an outage the refused ones are published again, possibly behind
others (each record carries its own ``datetime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
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
IN_FLIGHT = 64
"""Records published at once, awaiting their confirms together."""


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
    def __init__(self, queue: DurableQueue, server: str, *, buffer: int = 10_000) -> None:
        self._queue = queue
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
        """Publish what waits, up to ``IN_FLIGHT`` records at once (the broker confirms them
        together; the embedded queue commits them together); retry the refused ones."""
        backoff = 0.2
        while True:
            pending = [await self._buffer.get()]
            while len(pending) < IN_FLIGHT and not self._buffer.empty():
                pending.append(self._buffer.get_nowait())
            while pending:
                results = await asyncio.gather(
                    *(self._publish(record) for record in pending), return_exceptions=True
                )
                refused = []
                for record, result in zip(pending, results, strict=True):
                    if isinstance(result, QueueUnavailable):
                        refused.append(record)
                    elif isinstance(result, BaseException):
                        raise result
                    else:
                        self.published += 1
                        self._buffer.task_done()
                pending = refused
                if refused:
                    log.warning(
                        "event queue unavailable, retrying", extra={"records": len(refused)}
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                else:
                    backoff = 0.2

    async def _publish(self, record: dict[str, Any]) -> None:
        await self._queue.publish(
            EVENTS_QUEUE.name,
            json.dumps(record, separators=(",", ":")).encode(),
            message_id=record["event_id"],
        )

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
