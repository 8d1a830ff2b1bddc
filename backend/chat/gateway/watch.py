"""When each socket is next looked at: one timer per second of the clock, not one per socket.

Every socket needs looking at now and then: closing it if it has not authenticated in time,
pinging it after ``chat.heartbeat_seconds`` of silence, dropping it when the ping goes
unanswered, closing it when its token expires. A timer per socket for each of those costs
about 0.3 KB of memory per socket (the loop's handle, a copy of the context, a bound
method), on a node meant to hold 20k of them. Here each socket sits instead in one slot of
a wheel of one-second slots; the slot's single timer looks at every socket in it, and each
says when it next wants looking at (``Watched.look``). A socket is looked at within a
second after the time it asked for.

Leaving is eager (``forget``): a closed socket is not kept until its slot comes round, and
a node's wheel empties (its timers with it) as its sockets finish: there is nothing to close.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Protocol

log = logging.getLogger("sealchat.gateway")


class Watched(Protocol):
    watch_slot: int | None
    """The slot this item sits in; only ``Watch`` sets it."""

    def look(self, now: float) -> float | None:
        """Do what is due at loop time ``now``; when to look again (loop time), or None."""


class Watch:
    """The wheel of one node's sockets (loop time, ``loop.time()``)."""

    def __init__(self) -> None:
        self._slots: dict[int, set[Watched]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return sum(len(items) for items in self._slots.values())

    def timers(self) -> int:
        """Timers scheduled now: at most one per second ahead that has an item."""
        return len(self._timers)

    def at(self, item: Watched, when: float) -> None:
        """Look at ``item`` at loop time ``when`` (within a second after it, never before),
        instead of any time asked for before."""
        self.forget(item)
        loop = asyncio.get_running_loop()
        slot = math.ceil(when)
        now = loop.time()
        if slot <= now:
            slot = math.floor(now) + 1
        items = self._slots.get(slot)
        if items is None:
            items = self._slots[slot] = set()
            self._timers[slot] = loop.call_at(slot, self._fire, slot)
        items.add(item)
        item.watch_slot = slot

    def forget(self, item: Watched) -> None:
        """Take ``item`` out of the wheel, if it is in it."""
        slot = item.watch_slot
        if slot is None:
            return
        item.watch_slot = None
        items = self._slots.get(slot)
        if items is None:
            return
        items.discard(item)
        if not items:
            del self._slots[slot]
            self._timers.pop(slot).cancel()

    def _fire(self, slot: int) -> None:
        del self._timers[slot]
        items = self._slots.pop(slot)
        now = asyncio.get_running_loop().time()
        for item in items:
            item.watch_slot = None
            try:
                again = item.look(now)
            except Exception:
                log.exception("looking at a socket failed")
                continue
            if again is not None:
                self.at(item, again)
