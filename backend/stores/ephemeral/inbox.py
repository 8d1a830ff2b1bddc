"""A subscriber's bounded inbox, shared by every doorbell adapter.

A ringer must never wait for a slow subscriber, and a subscriber must never miss a ring
without knowing it: when the inbox is full its backlog is dropped and replaced by a single
``Resync("overflow")``, which sends the subscriber back to the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from backend.stores.ephemeral.port import Resync, Ring

OVERFLOW = Resync("overflow")


class Inbox:
    """Items for one subscriber, in order; ``get`` returns ``None`` once ended and read."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an inbox holds at least one item")
        # None marks the end; see end().
        self._queue: asyncio.Queue[Ring | Resync | None] = asyncio.Queue(maxsize=size)
        self._ended = False

    def put(self, item: Ring | Resync) -> None:
        """Queue ``item`` without waiting; on overflow trade the backlog for a Resync."""
        if self._ended:
            return
        if self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(OVERFLOW)
            if self._queue.full():  # a one-item inbox: the Resync covers this item too
                return
        self._queue.put_nowait(item)

    def end(self) -> None:
        """Accept nothing more; the reader gets the backlog, then ``None``."""
        if self._ended:
            return
        self._ended = True
        # A full queue cannot take the marker, but then get() sees the end once it drains.
        if not self._queue.full():
            self._queue.put_nowait(None)

    def take(self, limit: int) -> list[Ring | Resync]:
        """Up to ``limit`` items already waiting, in order, without waiting for more."""
        taken: list[Ring | Resync] = []
        while len(taken) < limit and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:  # the end marker: get() still answers None, as _ended is set
                break
            taken.append(item)
        return taken

    async def get(self) -> Ring | Resync | None:
        """The next item, waiting for one; ``None`` when the inbox has ended."""
        if self._ended and self._queue.empty():
            return None
        return await self._queue.get()


class Subscription:
    """What a doorbell's ``subscribe`` returns: its items in order (``async for``), and
    ``ready`` for those already waiting behind the last one, so that a subscriber can take
    a batch without a queue of its own."""

    def __init__(self, items: AsyncGenerator[Ring | Resync, None], inbox: Inbox) -> None:
        self._items = items
        self._inbox = inbox

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Ring | Resync:
        return await anext(self._items)

    def ready(self, limit: int) -> list[Ring | Resync]:
        """Up to ``limit`` items already waiting, in order, without waiting for more. The
        items' generator holds none between two ``__anext__``: it yields each as it takes it
        from the inbox, so these come after the last one yielded."""
        return self._inbox.take(limit)

    async def aclose(self) -> None:
        await self._items.aclose()
