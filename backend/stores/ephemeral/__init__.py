"""Ephemeral state port (expiring counters and flags, the doorbell, the presence book);
adapters live beside it."""

from backend.stores.ephemeral.port import Doorbell, KeyValue, PresenceBook, Resync, Ring

__all__ = ["Doorbell", "KeyValue", "PresenceBook", "Resync", "Ring"]
