"""Disappearing messages: the timer rides inside the encrypted content (``expires_in`` seconds
from the server's timestamp), and every client enforces it when showing and caching."""

from __future__ import annotations

import time
from typing import Any


def expires_at(content: dict[str, Any], sent_at: float) -> float | None:
    seconds = content.get("expires_in")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    return sent_at + float(seconds)


def is_expired(content: dict[str, Any], sent_at: float, now: float | None = None) -> bool:
    deadline = expires_at(content, sent_at)
    return deadline is not None and (time.time() if now is None else now) >= deadline
