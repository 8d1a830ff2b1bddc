"""Publishing with publisher confirms: each publish waits for the broker's ack of its tag.

Many publishes share one confirm-mode channel. The broker numbers them 1, 2, 3… in the order
they were sent and acks (or nacks) each number, sometimes many at once (``multiple``). A
``mandatory`` message that no queue takes comes back as ``basic.return`` before its ack; the
return does not carry the number, so every message carries it in ``correlation_id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.asyncio_connection import AsyncioConnection

from backend.stores.queue._amqp import Channel, describe
from backend.stores.queue.port import QueueUnavailable

log = logging.getLogger("sealchat.queue.rabbitmq")

_PERSISTENT = 2


class ConfirmingPublisher:
    """One confirm-mode channel and the publishes still waiting for their confirm."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._next_tag = 1
        self._pending: OrderedDict[int, asyncio.Future[None]] = OrderedDict()

    @classmethod
    async def open(cls, conn: AsyncioConnection) -> ConfirmingPublisher:
        channel = await Channel.open(conn)
        publisher = cls(channel)
        channel.raw.add_on_return_callback(publisher._on_return)
        channel.raw.add_on_close_callback(publisher._on_close)
        try:
            await channel.call(channel.raw.confirm_delivery, publisher._on_confirm)
        except BaseException:
            channel.abandon()
            raise
        return publisher

    @property
    def is_open(self) -> bool:
        return self._channel.is_open

    async def publish(
        self, queue: str, body: bytes, message_id: str | None, headers: Mapping[str, str] | None
    ) -> None:
        tag = self._next_tag
        properties = pika.BasicProperties(
            delivery_mode=_PERSISTENT,
            message_id=message_id,
            headers=dict(headers) if headers else None,
            correlation_id=str(tag),
        )
        try:
            self._channel.raw.basic_publish("", queue, body, properties, mandatory=True)
        except pika.exceptions.AMQPError as exc:
            raise QueueUnavailable(f"cannot publish to RabbitMQ: {exc!r}") from exc
        self._next_tag += 1
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[tag] = confirmed
        await confirmed

    async def close(self) -> None:
        await self._channel.close()

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            while self._pending and next(iter(self._pending)) <= method.delivery_tag:
                _tag, fut = self._pending.popitem(last=False)
                self._settle(fut, acked)
        elif method.delivery_tag in self._pending:
            self._settle(self._pending.pop(method.delivery_tag), acked)

    @staticmethod
    def _settle(fut: asyncio.Future[None], acked: bool) -> None:
        if fut.done():  # the publisher stopped waiting (cancelled)
            return
        if acked:
            fut.set_result(None)
        else:
            fut.set_exception(QueueUnavailable("RabbitMQ refused the message (nack)"))

    def _on_return(
        self,
        _raw: pika.channel.Channel,
        method: pika.spec.Basic.Return,
        properties: pika.spec.BasicProperties,
        _body: bytes,
    ) -> None:
        try:
            tag = int(properties.correlation_id)
        except (TypeError, ValueError):
            log.warning("unmatched basic.return", extra={"reply_code": method.reply_code})
            return
        fut = self._pending.pop(tag) if tag in self._pending else None
        if fut is not None and not fut.done():
            fut.set_exception(
                QueueUnavailable(
                    f"no queue named {method.routing_key!r} took the message "
                    f"({method.reply_code} {method.reply_text}); declare it first"
                )
            )

    def _on_close(self, _raw: pika.channel.Channel, reason: BaseException) -> None:
        pending, self._pending = self._pending, OrderedDict()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(
                    QueueUnavailable(
                        f"RabbitMQ channel closed before confirming: {describe(reason)}"
                    )
                )
