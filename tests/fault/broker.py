"""Direct AMQP access for the fault suite: a vhost of a test's own, queue depths, and raw
publishes (a poison message) that go around the chat node's intake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pika

from tests import services


@contextmanager
def own_vhost(base_url: str = services.RABBITMQ_URL) -> Iterator[str]:
    """A fresh vhost on the shared RabbitMQ for one test (its queues start empty), deleted
    afterwards; the URL naming it."""
    vhost = f"sealchat-fault-{uuid.uuid4().hex[:10]}"
    services.rabbitmqctl("add_vhost", vhost)
    try:
        services.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield base_url.rstrip("/") + "/" + quote(vhost, safe="")
    finally:
        services.rabbitmqctl("delete_vhost", vhost)


def _connection(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


def queue_depth(url: str, queue: str) -> int:
    """Ready messages on ``queue`` (a passive declare: the queue must exist)."""
    conn = _connection(url)
    try:
        ok = conn.channel().queue_declare(queue, passive=True)
        return int(ok.method.message_count)
    finally:
        conn.close()


def publish_raw(url: str, queue: str, body: bytes, message_id: str) -> None:
    """Publish ``body`` to ``queue`` through the default exchange, confirmed, persistent."""
    conn = _connection(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "",
            queue,
            body,
            pika.BasicProperties(message_id=message_id, delivery_mode=2),
            mandatory=True,
        )
    finally:
        conn.close()
