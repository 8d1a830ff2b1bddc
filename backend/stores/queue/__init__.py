"""Durable queue port (at-least-once hand-off between services); adapters live beside it."""

from backend.stores.queue.port import (
    Delivery,
    DurableQueue,
    QueueSpec,
    QueueUnavailable,
    Settler,
    Subscription,
)

__all__ = ["Delivery", "DurableQueue", "QueueSpec", "QueueUnavailable", "Settler", "Subscription"]
