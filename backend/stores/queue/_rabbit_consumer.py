"""A RabbitMQ consumer as an async iterator that survives connection loss.

Each subscription has its own channel (``basic_qos`` is per channel) with manual acks.
pika's delivery callback feeds an ``asyncio.Queue`` that ``__anext__`` reads. When the
channel dies with the connection, deliveries still buffered are dropped (the broker requeues
them) and the next ``__anext__`` attaches a new channel, waiting out the adapter's backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import pika.channel
import pika.spec
from pika.adapters.asyncio_connection import AsyncioConnection

from backend.stores.queue._amqp import Channel, Refused, describe
from backend.stores.queue.port import Delivery, QueueUnavailable, Settler, Subscription

log = logging.getLogger("sealchat.queue.rabbitmq")

_LOST: Final = object()
"""Wakes ``__anext__`` when the channel is gone (lost, or the subscription closed)."""


class _Ticket(Settler):
    """Settles one delivery on the channel it came from."""

    __slots__ = ("_channel", "_settled", "_tag")

    def __init__(self, channel: Channel, tag: int) -> None:
        self._channel = channel
        self._tag = tag
        self._settled = False

    def _claim(self) -> bool:
        if self._settled:
            raise RuntimeError("delivery already acked or nacked")
        self._settled = True
        # A closed channel means the broker has already put the message back.
        return self._channel.is_open

    async def ack(self, delivery: Delivery) -> None:
        if self._claim():
            self._channel.raw.basic_ack(self._tag)

    async def nack(self, delivery: Delivery, *, requeue: bool) -> None:
        if self._claim():
            self._channel.raw.basic_nack(self._tag, requeue=requeue)


def _headers(properties: pika.spec.BasicProperties) -> dict[str, str]:
    # The broker adds its own typed headers (x-delivery-count, x-death); the port has text only.
    return {k: v for k, v in (properties.headers or {}).items() if isinstance(v, str)}


class RabbitSubscription(Subscription):
    """Deliveries from one queue, at most ``prefetch`` unsettled at a time.

    Close it with ``aclose()`` (``contextlib.aclosing``) to hand back what it holds at once;
    otherwise that happens when the adapter closes.
    """

    def __init__(
        self,
        queue: str,
        prefetch: int,
        connection: Callable[[], Awaitable[AsyncioConnection]],
        retry_delay: Callable[[], float],
        on_close: Callable[[RabbitSubscription], None],
    ) -> None:
        self._queue = queue
        self._prefetch = prefetch
        self._connection = connection
        self._retry_delay = retry_delay
        self._on_close = on_close
        self._inbox: asyncio.Queue[Delivery | object] = asyncio.Queue()
        self._channel: Channel | None = None
        self._attaching: asyncio.Task[None] | None = None
        self._closed = False

    def __aiter__(self) -> RabbitSubscription:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._channel is None:
                await self._attached()
                continue
            item = await self._inbox.get()
            if isinstance(item, Delivery):
                return item

    def ready(self, limit: int) -> list[Delivery]:
        if self._closed:
            return []
        taken: list[Delivery] = []
        while len(taken) < limit and not self._inbox.empty():
            item = self._inbox.get_nowait()
            if not isinstance(item, Delivery):
                # The channel is gone (_LOST is last: the inbox was emptied before it);
                # leave it for __anext__, which re-attaches.
                self._inbox.put_nowait(item)
                break
            taken.append(item)
        return taken

    async def aclose(self) -> None:
        """Cancel the consumer; deliveries not yet acked go back to the queue."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        self._inbox.put_nowait(_LOST)
        if self._attaching is not None:
            self._attaching.cancel()
            with contextlib.suppress(asyncio.CancelledError, QueueUnavailable):
                await self._attaching
            self._attaching = None
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def _attached(self) -> None:
        # One attach task, shielded: a caller that gives up (a timeout) leaves it running
        # for the next call instead of leaving a half-opened channel behind.
        if self._attaching is None:
            self._attaching = asyncio.get_running_loop().create_task(self._attach())
        task = self._attaching
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed and task.cancelled() and not (current and current.cancelling()):
                return  # aclose() stopped the attach: __anext__ ends the iteration
            raise
        finally:
            if task.done() and self._attaching is task:
                self._attaching = None

    async def _attach(self) -> None:
        while not self._closed:
            try:
                conn = await self._connection()
                channel = await Channel.open(conn)
            except Refused:
                raise
            except QueueUnavailable as exc:
                log.warning(
                    "consumer waiting for RabbitMQ", extra={"queue": self._queue, "error": str(exc)}
                )
                await asyncio.sleep(self._retry_delay())
                continue
            try:
                await self._subscribe(channel)
            except QueueUnavailable as exc:
                channel.abandon()
                if isinstance(exc, Refused):
                    raise QueueUnavailable(f"cannot consume {self._queue!r}: {exc}") from exc
                await asyncio.sleep(self._retry_delay())
                continue
            except BaseException:
                channel.abandon()
                raise
            self._channel = channel
            return

    async def _subscribe(self, channel: Channel) -> None:
        await channel.call(channel.raw.basic_qos, prefetch_count=self._prefetch)
        channel.raw.add_on_close_callback(self._on_channel_closed)
        channel.raw.add_on_cancel_callback(lambda _frame: channel.abandon())

        def on_message(
            _raw: pika.channel.Channel,
            method: pika.spec.Basic.Deliver,
            properties: pika.spec.BasicProperties,
            body: bytes,
        ) -> None:
            self._inbox.put_nowait(
                Delivery(
                    body=body,
                    message_id=properties.message_id,
                    headers=_headers(properties),
                    redelivered=bool(method.redelivered),
                    _settle=_Ticket(channel, method.delivery_tag),
                )
            )

        await channel.call(channel.raw.basic_consume, self._queue, on_message)

    def _on_channel_closed(self, raw: pika.channel.Channel, reason: BaseException) -> None:
        if self._channel is None or self._channel.raw is not raw:
            return
        self._channel = None
        # Buffered deliveries can no longer be acked; the broker redelivers them.
        while not self._inbox.empty():
            self._inbox.get_nowait()
        self._inbox.put_nowait(_LOST)
        if not self._closed:
            log.warning(
                "consumer channel lost; re-attaching",
                extra={"queue": self._queue, "reason": describe(reason)},
            )
