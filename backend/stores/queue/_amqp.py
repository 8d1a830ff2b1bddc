"""Awaitable wrappers over pika's callback API, on the running asyncio loop.

pika's ``AsyncioConnection`` reports everything through callbacks. These helpers turn each
reply into a future and make sure that a channel or connection which closes fails whatever
was waiting on it; otherwise a coroutine waiting for a reply that will never come hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.frame
from pika.adapters.asyncio_connection import AsyncioConnection

from backend.stores.queue.port import QueueUnavailable

log = logging.getLogger("sealchat.queue.rabbitmq")

# A graceful close that the broker never answers must not hang shutdown.
CLOSE_TIMEOUT_SECONDS = 5.0


class Refused(QueueUnavailable):
    """The broker answered and said no (e.g. no such queue, arguments differ): retrying the
    same request on a fresh connection will not help."""


def describe(reason: BaseException | None) -> str:
    """A short, body-free description of why a channel or connection closed."""
    if isinstance(reason, pika.exceptions.ChannelClosed | pika.exceptions.ConnectionClosed):
        return f"{reason.reply_code} {reason.reply_text}"
    return repr(reason)


def _closed_error(reason: BaseException | None) -> QueueUnavailable:
    if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
        return Refused(f"RabbitMQ refused the request: {describe(reason)}")
    return QueueUnavailable(f"RabbitMQ channel closed: {describe(reason)}")


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class CoalescingConnection(AsyncioConnection):
    """pika's asyncio connection, writing what one turn of the loop emits in one write.

    pika hands its transport each frame on its own (a publish is three: method, header,
    body) and the transport sends each with its own ``send``. Here the frames emitted
    while a callback runs are joined and given to the transport at the end of it: one
    ``send`` for a publish, or for every ack and publish of a batch, and fewer segments
    for the broker to read. The order of frames is unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outgoing: list[bytes] = []

    def _adapter_emit_data(self, data: bytes) -> None:
        if not self._outgoing:
            loop: asyncio.AbstractEventLoop = self.ioloop  # the loop the connection runs on
            loop.call_soon(self._emit_outgoing)
        self._outgoing.append(data)

    def _emit_outgoing(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if frames and self._transport is not None:
            super()._adapter_emit_data(frames[0] if len(frames) == 1 else b"".join(frames))


async def connect(params: pika.connection.Parameters) -> AsyncioConnection:
    """Open a connection on the running loop; ``QueueUnavailable`` if that fails."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()
    conn = CoalescingConnection(
        params,
        on_open_callback=lambda c: _resolve(opened, c),
        on_open_error_callback=lambda _c, exc: _fail(
            opened, QueueUnavailable(f"cannot connect to RabbitMQ: {describe(exc)}")
        ),
        custom_ioloop=loop,
    )
    try:
        return await opened
    except asyncio.CancelledError:
        if not (conn.is_closing or conn.is_closed):
            conn.close()  # aborts the half-open stream; pika reports it to on_open_error
        raise


async def disconnect(conn: AsyncioConnection) -> None:
    """Close ``conn`` gracefully (its channels first) and wait until it is closed."""
    if conn.is_closed:
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    conn.add_on_close_callback(lambda _c, _reason: _resolve(done, None))
    if not conn.is_closing:
        conn.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await done
    except TimeoutError:
        log.warning("RabbitMQ did not confirm the connection close in time")


class Channel:
    """A pika channel whose synchronous methods can be awaited."""

    def __init__(self, raw: pika.channel.Channel) -> None:
        self.raw = raw
        self._waiting: set[asyncio.Future[Any]] = set()
        self.closed: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        raw.add_on_close_callback(self._on_close)

    @classmethod
    async def open(cls, conn: AsyncioConnection) -> Channel:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        try:
            raw = conn.channel(on_open_callback=lambda _ch: _resolve(opened, None))
        except pika.exceptions.AMQPError as exc:
            raise QueueUnavailable(f"cannot open a RabbitMQ channel: {exc!r}") from exc
        channel = cls(raw)
        channel._waiting.add(opened)
        try:
            await opened
        except asyncio.CancelledError:
            channel.abandon()
            raise
        finally:
            channel._waiting.discard(opened)
        return channel

    @property
    def is_open(self) -> bool:
        return bool(self.raw.is_open)

    async def call(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> Any:
        """Send a synchronous AMQP method of this channel and wait for its reply frame."""
        fut: asyncio.Future[pika.frame.Method] = asyncio.get_running_loop().create_future()
        if self.closed.done():
            raise _closed_error(self.closed.result())
        self._waiting.add(fut)
        try:
            method(*args, callback=lambda frame: _resolve(fut, frame), **kwargs)
            return await fut
        except pika.exceptions.AMQPError as exc:
            raise QueueUnavailable(f"RabbitMQ channel unusable: {exc!r}") from exc
        finally:
            self._waiting.discard(fut)

    def abandon(self) -> None:
        """Start closing without waiting (the broker requeues whatever it had delivered)."""
        if not (self.raw.is_closing or self.raw.is_closed):
            with contextlib.suppress(pika.exceptions.AMQPError):
                self.raw.close()

    async def close(self) -> None:
        """Close the channel and wait for it (unacked deliveries go back to their queue)."""
        self.abandon()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await asyncio.shield(self.closed)
        except TimeoutError:
            log.warning("RabbitMQ did not confirm a channel close in time")

    def _on_close(self, _raw: pika.channel.Channel, reason: BaseException) -> None:
        for fut in list(self._waiting):
            _fail(fut, _closed_error(reason))
        self._waiting.clear()
        _resolve(self.closed, reason)
