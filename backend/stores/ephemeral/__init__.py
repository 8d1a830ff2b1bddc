"""Ephemeral state port (expiring counters and flags, the doorbell); adapters live beside it."""

from backend.stores.ephemeral.port import Doorbell, KeyValue, Resync, Ring

__all__ = ["Doorbell", "KeyValue", "Resync", "Ring"]
