"""Datetime rules every document adapter applies at its boundary.

BSON dates hold milliseconds, so both adapters keep exactly that much: a value written to
SQLite reads back the same as it would from MongoDB, and range filters agree at the edges.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused rather than guessed at."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime given to the document store; pass an aware UTC one")
    return value.astimezone(UTC)


def utc_millis(value: datetime) -> datetime:
    """``value`` in UTC, truncated to whole milliseconds (BSON's precision)."""
    value = utc(value)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)
