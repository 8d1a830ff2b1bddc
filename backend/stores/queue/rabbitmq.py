"""RabbitMQ adapter of the durable queue port, through pika's asyncio connection.

Queues are durable quorum queues (replicated, and the only kind that counts deliveries),
dead-lettering through the default exchange. A publish is persistent and ``mandatory`` and
returns only when the broker confirms it. One connection carries a confirm-mode publishing
channel, a channel for declarations, and one channel per consumer. A lost connection fails
the publishes in flight; the next call reconnects, at most once per backoff interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from backend.stores.queue._amqp import Channel, Refused, connect, describe, disconnect
from backend.stores.queue._rabbit_consumer import RabbitSubscription
from backend.stores.queue._rabbit_publisher import ConfirmingPublisher
from backend.stores.queue.port import DurableQueue, QueueSpec, QueueUnavailable

log = logging.getLogger("sealchat.queue.rabbitmq")

BLOCKED_TIMEOUT_SECONDS = 30.0


def queue_arguments(spec: QueueSpec) -> dict[str, Any]:
    """The ``x-`` arguments that make ``spec`` a quorum queue."""
    if spec.max_deliveries < 1:
        raise ValueError("max_deliveries must be at least 1")
    args: dict[str, Any] = {
        "x-queue-type": "quorum",
        # The broker dead-letters a message returned more than the limit times, so a limit
        # of n - 1 allows exactly n deliveries.
        "x-delivery-limit": spec.max_deliveries - 1,
    }
    if spec.dead_letter is not None:
        args["x-dead-letter-exchange"] = ""
        args["x-dead-letter-routing-key"] = spec.dead_letter
    if spec.max_length is not None:
        args["x-max-length"] = spec.max_length
        args["x-overflow"] = "drop-head"
    if spec.single_active_consumer:
        args["x-single-active-consumer"] = True
    return args


DEAD_LETTER_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}
"""A dead-letter queue keeps what it gets: no delivery limit, no length limit."""


class _Backoff:
    """Spaces out connection attempts after failures: 0.2 s doubling to 5 s."""

    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self._first, self._cap = first, cap
        self._failures = 0
        self._not_before = 0.0

    def remaining(self) -> float:
        return max(0.0, self._not_before - asyncio.get_running_loop().time())

    def failed(self) -> float:
        delay = min(self._cap, self._first * 2**self._failures)
        self._failures += 1
        self._not_before = asyncio.get_running_loop().time() + delay
        return delay

    def succeeded(self) -> None:
        self._failures = 0
        self._not_before = 0.0


class RabbitQueue(DurableQueue):
    """Durable queues on RabbitMQ at ``url`` (an ``amqp://`` URL naming the vhost)."""

    def __init__(self, url: str) -> None:
        self._params = pika.URLParameters(url)
        if self._params.blocked_connection_timeout is None:
            # Under a resource alarm the broker stops reading; fail publishes, do not hang them.
            self._params.blocked_connection_timeout = BLOCKED_TIMEOUT_SECONDS
        self._conn: AsyncioConnection | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._admin: Channel | None = None
        self._lock = asyncio.Lock()
        self._backoff = _Backoff()
        self._last_error: QueueUnavailable | None = None
        self._subscriptions: set[RabbitSubscription] = set()
        self._closed = False

    async def declare(self, spec: QueueSpec) -> None:
        arguments = queue_arguments(spec)
        if spec.dead_letter is not None:
            await self._declare(spec.dead_letter, DEAD_LETTER_ARGUMENTS)
        await self._declare(spec.name, arguments)

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        publisher = await self._publishing_channel()
        await publisher.publish(queue, body, message_id, headers)

    def consume(self, queue: str, *, prefetch: int = 64) -> RabbitSubscription:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        subscription = RabbitSubscription(
            queue,
            prefetch,
            self._connection,
            lambda: max(0.2, self._backoff.remaining()),
            self._subscriptions.discard,
        )
        self._subscriptions.add(subscription)
        return subscription

    async def purge(self, queue: str) -> int:
        admin = await self._admin_channel()
        try:
            frame = await admin.call(admin.raw.queue_purge, queue)
        except Refused as exc:
            raise QueueUnavailable(f"cannot purge {queue!r}: {exc}") from exc
        return int(frame.method.message_count)

    async def depth(self, queue: str) -> int:
        admin = await self._admin_channel()
        try:  # passive: read the count, never create or alter the queue
            frame = await admin.call(admin.raw.queue_declare, queue, passive=True)
        except Refused as exc:
            raise QueueUnavailable(f"cannot read the depth of {queue!r}: {exc}") from exc
        return int(frame.method.message_count)

    async def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        async with self._lock:
            conn, self._conn = self._conn, None
            self._publisher = self._admin = None
        if conn is not None:
            await disconnect(conn)

    async def _declare(self, name: str, arguments: dict[str, Any]) -> None:
        admin = await self._admin_channel()
        try:
            await admin.call(admin.raw.queue_declare, name, durable=True, arguments=arguments)
        except Refused as exc:
            raise QueueUnavailable(f"cannot declare {name!r}: {exc}") from exc

    async def _publishing_channel(self) -> ConfirmingPublisher:
        publisher = self._publisher
        if publisher is not None and publisher.is_open:
            return publisher
        async with self._lock:
            conn = await self._connected()
            if self._publisher is None or not self._publisher.is_open:
                self._publisher = await ConfirmingPublisher.open(conn)
            return self._publisher

    async def _admin_channel(self) -> Channel:
        admin = self._admin
        if admin is not None and admin.is_open:
            return admin
        async with self._lock:
            conn = await self._connected()
            if self._admin is None or not self._admin.is_open:
                self._admin = await Channel.open(conn)
            return self._admin

    async def _connection(self) -> AsyncioConnection:
        conn = self._conn
        if conn is not None and conn.is_open and not self._closed:
            return conn
        async with self._lock:
            return await self._connected()

    async def _connected(self) -> AsyncioConnection:
        """The open connection, reconnecting if needed. Call with ``_lock`` held."""
        if self._closed:
            raise Refused("the queue adapter is closed")
        if self._conn is not None and self._conn.is_open:
            return self._conn
        wait = self._backoff.remaining()
        if wait > 0 and self._last_error is not None:
            # Fail fast between attempts: callers (a client's send) retry on their own.
            raise QueueUnavailable(f"{self._last_error} (next attempt in {wait:.1f} s)")
        try:
            conn = await connect(self._params)
        except QueueUnavailable as exc:
            delay = self._backoff.failed()
            self._last_error = exc
            log.warning("RabbitMQ unreachable", extra={"error": str(exc), "retry_in": delay})
            raise
        self._backoff.succeeded()
        self._last_error = None
        if self._closed:  # close() ran while we were connecting
            await disconnect(conn)
            raise Refused("the queue adapter is closed")
        conn.add_on_close_callback(self._on_connection_closed)
        self._conn, self._publisher, self._admin = conn, None, None
        return conn

    def _on_connection_closed(self, conn: AsyncioConnection, reason: BaseException) -> None:
        if conn is self._conn:
            self._conn = None
            log.warning("RabbitMQ connection lost", extra={"reason": describe(reason)})
