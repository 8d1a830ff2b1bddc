"""Durable queue port: at-least-once hand-off between services.

Adapters: RabbitMQ through pika (cluster mode) and an in-process queue persisted in SQLite
(embedded mode). Both give the same contract:

- ``publish`` returns only once the broker has taken responsibility for the message
  (a publisher confirm; a committed SQLite transaction), so "published" means "durable".
- A consumer gets each message until it ``ack``s it; a message that is nacked, or whose
  consumer goes away without acking, is delivered again (``redelivered`` set).
- A message nacked without requeue (or delivered more than ``max_deliveries`` times) goes to
  the queue's dead-letter queue when one is declared, and is dropped otherwise.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field


class QueueUnavailable(Exception):
    """The broker cannot be reached or refused the message; nothing was published."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """How a queue is declared. Declaring the same spec twice is harmless."""

    name: str
    dead_letter: str | None = None
    """Name of the dead-letter queue (declared alongside) or None."""
    max_deliveries: int = 5
    """After this many deliveries without an ack the message is dead-lettered."""
    max_length: int | None = None
    """Drop the oldest messages beyond this many (None: unbounded)."""
    single_active_consumer: bool = False
    """Only one consumer at a time gets deliveries; the others stand by until it goes away.
    That keeps a queue's order through a consumer's crash and replacement (one writer)."""


@dataclass(slots=True)
class Delivery:
    """One message handed to a consumer. Call exactly one of ``ack`` / ``nack``."""

    body: bytes
    message_id: str | None
    headers: Mapping[str, str]
    redelivered: bool
    _settle: Settler = field(repr=False)

    async def ack(self) -> None:
        """The consumer is done: the message is removed for good."""
        await self._settle.ack(self)

    async def nack(self, *, requeue: bool = True) -> None:
        """Hand the message back (``requeue``) or dead-letter it (``requeue=False``)."""
        await self._settle.nack(self, requeue=requeue)


class Settler(abc.ABC):
    """Adapter-side handle that acks or nacks a delivery."""

    @abc.abstractmethod
    async def ack(self, delivery: Delivery) -> None: ...

    @abc.abstractmethod
    async def nack(self, delivery: Delivery, *, requeue: bool) -> None: ...


class Subscription(AsyncIterator[Delivery], abc.ABC):
    """What ``consume`` returns. ``aclose()`` (e.g. ``contextlib.aclosing``) cancels the
    consumer and hands back every message it holds unsettled, to be delivered again."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    def ready(self, limit: int) -> list[Delivery]:
        """Up to ``limit`` more deliveries already received, in order, without waiting (what
        a consumer may handle together with the one it just got). None by default."""
        return []


class DurableQueue(abc.ABC):
    """A durable, at-least-once queue."""

    @abc.abstractmethod
    async def declare(self, spec: QueueSpec) -> None:
        """Create the queue (and its dead-letter queue) if it does not exist."""

    @abc.abstractmethod
    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Store ``body`` durably on ``queue``; raise ``QueueUnavailable`` if that failed."""

    @abc.abstractmethod
    def consume(self, queue: str, *, prefetch: int = 64) -> Subscription:
        """Yield deliveries from ``queue``, at most ``prefetch`` unsettled at a time."""

    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Remove every ready message; return how many (tests and operators only)."""

    @abc.abstractmethod
    async def depth(self, queue: str) -> int:
        """How many messages are ready on ``queue`` (not held by a consumer): for metrics."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop consumers and release connections."""
