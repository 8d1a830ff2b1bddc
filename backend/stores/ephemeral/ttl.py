"""The one rule every key-value adapter shares about expiry times."""

from __future__ import annotations


def require_ttl(ttl_seconds: int) -> None:
    """Reject a TTL below one second: Redis would refuse it (or delete the key at once)."""
    if ttl_seconds < 1:
        raise ValueError(f"ttl_seconds must be at least 1, got {ttl_seconds}")
