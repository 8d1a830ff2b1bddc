"""The RabbitMQ connection's writes: what pika emits in one turn of the loop is one write."""

from __future__ import annotations

import asyncio

import pika
import pika.frame
import pytest

from backend.stores.queue._amqp import Channel, connect, disconnect

TEST_TIMEOUT = 30.0


@pytest.mark.rabbitmq
async def test_rabbitmq_writes_what_one_turn_emits_at_once(rabbitmq_url: str) -> None:
    """Three publishes (three frames each) and nothing else in one turn of the loop: one
    write to the transport, holding the nine frames in order."""
    conn = await connect(pika.URLParameters(rabbitmq_url))
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            channel = await Channel.open(conn)
            writes: list[bytes] = []
            transport = conn._transport
            assert transport is not None
            write = transport.write

            def counted(data: bytes) -> None:
                writes.append(data)
                write(data)

            transport.write = counted  # type: ignore[method-assign]
            for n in range(3):
                channel.raw.basic_publish("", "sealchat.test.nowhere", b"body %d" % n)
            assert writes == []  # nothing yet: the frames wait for the end of this turn
            await asyncio.sleep(0)
            assert len(writes) == 1
            frames, data = [], writes[0]
            while data:
                used, frame = pika.frame.decode_frame(data)
                frames.append(frame)
                data = data[used:]
            assert [type(f).__name__ for f in frames] == ["Method", "Header", "Body"] * 3
            assert [f.fragment for f in frames if isinstance(f, pika.frame.Body)] == [
                b"body 0",
                b"body 1",
                b"body 2",
            ]
            await channel.close()
    finally:
        await disconnect(conn)
