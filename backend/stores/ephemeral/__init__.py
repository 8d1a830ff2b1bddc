"""Ephemeral state port (expiring counters and flags, the doorbell, the presence book);
adapters live beside it."""

from backend.stores.ephemeral.port import (
    Counter,
    Doorbell,
    KeyValue,
    PresenceBook,
    Resync,
    Ring,
)

__all__ = ["Counter", "Doorbell", "KeyValue", "PresenceBook", "Resync", "Ring"]
