"""A consumer of the embedded queue as an async iterator.

It claims up to ``prefetch`` messages at a time in one write, hands them out one by one, and
sleeps on an ``asyncio.Event`` that a commit touching its queue (or a settle of its own)
sets; a slow poll covers writers in another process. Claims and settles run in the group
commit task and are shielded, so a consumer that stops waiting (a timeout) never loses track
of a message the store has already handed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal

from backend.stores.queue._group_commit import GroupCommit
from backend.stores.queue._sqlite_store import Claimed, QueueStore, messages
from backend.stores.queue.port import Delivery, QueueUnavailable, Settler, Subscription

log = logging.getLogger("sealchat.queue.embedded")

Outcome = Literal["ack", "requeue", "reject"]


class _Ticket(Settler):
    """Settles one delivery through the subscription that received it."""

    __slots__ = ("_message", "_settled", "_subscription")

    def __init__(self, subscription: SqliteSubscription, message: int) -> None:
        self._subscription = subscription
        self._message = message
        self._settled = False

    async def ack(self, delivery: Delivery) -> None:
        await self._settle("ack")

    async def nack(self, delivery: Delivery, *, requeue: bool) -> None:
        await self._settle("requeue" if requeue else "reject")

    async def _settle(self, outcome: Outcome) -> None:
        if self._settled:
            raise RuntimeError("delivery already acked or nacked")
        self._settled = True
        try:
            await self._subscription.settle(self._message, outcome)
        except QueueUnavailable:
            self._settled = False  # nothing was written: the caller may try again
            raise


class SqliteSubscription(Subscription):
    """Deliveries from one queue, at most ``prefetch`` unsettled at a time.

    Close it with ``aclose()`` (``contextlib.aclosing``) to hand back what it holds at once;
    otherwise that happens when the adapter closes.
    """

    def __init__(
        self,
        queue: str,
        prefetch: int,
        *,
        store: QueueStore,
        writer: GroupCommit,
        check: Callable[[str], Awaitable[object]],
        on_close: Callable[[SqliteSubscription], None],
        may_claim: Callable[[SqliteSubscription], bool],
        poll_interval: float,
    ) -> None:
        self.queue = queue
        self._prefetch = prefetch
        self._store = store
        self._writer = writer
        self._check = check
        self._on_close = on_close
        self._may_claim = may_claim
        self._poll = poll_interval
        self._owner = uuid.uuid4().hex
        self._buffer: deque[Delivery] = deque()
        self._unsettled: set[int] = set()
        self._claiming: asyncio.Future[list[Claimed]] | None = None
        self._wakeup = asyncio.Event()
        self._checked = False
        self._closed = False

    def __aiter__(self) -> SqliteSubscription:
        return self

    def wake(self) -> None:
        self._wakeup.set()

    async def __anext__(self) -> Delivery:
        if not self._checked and not self._closed:
            await self._check(self.queue)
            self._checked = True
        while not self._closed:
            if self._buffer:
                return self._buffer.popleft()
            # Cleared before looking, so a commit between the look and the wait still wakes us.
            self._wakeup.clear()
            room = self._prefetch - len(self._unsettled)
            # A standby consumer of a single-active-consumer queue sleeps until woken.
            if room > 0 and self._may_claim(self):
                await self._claim(room)
                if self._buffer:
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wakeup.wait()
        raise StopAsyncIteration

    def ready(self, limit: int) -> list[Delivery]:
        if self._closed:
            return []
        count = min(limit, len(self._buffer))
        return [self._buffer.popleft() for _ in range(count)]

    async def settle(self, message: int, outcome: Outcome) -> None:
        if self._closed:
            return  # closing already made the message ready again
        touches = self._touches()
        if outcome == "ack":  # a row: the acks committed together are one executemany
            statement, params = self._store.ack_row(message, self._owner)
            done = self._writer.submit_row(statement, params, touches=touches)
        elif outcome == "reject":
            op = partial(self._store.reject, message=message, owner=self._owner)
            done = self._writer.submit(op, touches=touches)
        else:
            where = (messages.c.id == message, messages.c.owner == self._owner)
            done = self._writer.submit(partial(self._store.release, where=where), touches=touches)
        done.add_done_callback(partial(self._settled, message))
        await asyncio.shield(done)

    async def aclose(self) -> None:
        """Stop; every message held (delivered or buffered, unsettled) becomes ready again."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        self._on_close(self)
        self._buffer.clear()
        self._unsettled.clear()
        try:
            released = self._writer.submit(
                partial(self._store.release, where=(messages.c.owner == self._owner,)),
                touches=self._touches(),
            )
            await asyncio.shield(released)
        except QueueUnavailable as exc:
            # Left "delivered"; the next start of the queue makes them ready again.
            log.warning("could not release held messages", extra={"error": str(exc)})

    def _touches(self) -> tuple[str, str | None]:
        declared = self._store.declared.get(self.queue)
        return self.queue, declared.dead_letter if declared else None

    async def _claim(self, room: int) -> None:
        if self._claiming is None:
            claim = self._writer.submit(
                partial(self._store.claim, queue=self.queue, owner=self._owner, limit=room)
            )
            claim.add_done_callback(self._absorb)
            self._claiming = claim
        await asyncio.shield(self._claiming)

    def _absorb(self, claim: asyncio.Future[list[Claimed]]) -> None:
        self._claiming = None
        if claim.cancelled() or claim.exception() is not None or self._closed:
            return  # after close, the release queued behind this claim frees the rows
        for row in claim.result():
            self._unsettled.add(row.id)
            self._buffer.append(
                Delivery(
                    body=row.body,
                    message_id=row.message_id,
                    headers=row.headers,
                    redelivered=row.deliveries > 1,
                    _settle=_Ticket(self, row.id),
                )
            )

    def _settled(self, message: int, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        self._unsettled.discard(message)
        self._wakeup.set()
