"""Typing notices are ephemeral and cheap to drop: at most one "is typing" per user and room
every few seconds reaches the other members, however often a client sends it.

A "stopped typing" passes only when the last notice that went out said "typing", so members
never see a stop for a start they were not shown.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

INTERVAL = 3.0
"""Seconds between two "typing" notices of one user in one room."""
MAX_ENTRIES = 10_000
"""User and room pairs remembered; the least recently active are forgotten first."""


class TypingThrottle:
    def __init__(
        self,
        interval: float = INTERVAL,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._max = max_entries
        self._clock = clock
        # (user, room) -> (when the last notice went out, whether it said "typing")
        self._last: OrderedDict[tuple[str, str], tuple[float, bool]] = OrderedDict()

    def allow(self, user: str, room: str, active: bool) -> bool:
        """Whether this notice goes out; remembers it when it does."""
        key, now = (user, room), self._clock()
        last = self._last.get(key)
        if active:
            if last is not None and last[1] and now - last[0] < self._interval:
                return False
        elif last is None or not last[1]:
            return False
        self._last[key] = (now, active)
        self._last.move_to_end(key)
        if len(self._last) > self._max:
            self._last.popitem(last=False)
        return True
