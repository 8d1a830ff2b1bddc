"""In-process ephemeral adapters for embedded mode (one server process, no Redis).

Everything here lives in this process only, which is all the port promises: losing it costs
a throttle window or a resync, never data.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable, Collection

from backend.stores.ephemeral.inbox import Inbox, Subscription
from backend.stores.ephemeral.port import (
    Counter,
    Doorbell,
    KeyValue,
    PresenceBook,
    Resync,
    Ring,
)
from backend.stores.ephemeral.ttl import require_ttl

Clock = Callable[[], float]


class MemoryKeyValue(KeyValue):
    """Counters and flags in a dict, each with a deadline on a monotonic clock.

    An expired key is dropped when it is next touched; a full sweep runs at most once per
    ``sweep_interval`` so keys that are never touched again (one-off throttle keys) do not
    pile up.
    """

    def __init__(self, clock: Clock = time.monotonic, sweep_interval: float = 60.0) -> None:
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._next_sweep = clock() + sweep_interval
        self._entries: dict[str, tuple[int, float]] = {}  # key -> (value, expires_at)

    def __len__(self) -> int:
        """Keys held right now, expired or not (for tests of the sweep)."""
        return len(self._entries)

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._entries = {k: e for k, e in self._entries.items() if e[1] > now}
            self._next_sweep = now + self._sweep_interval
        return now

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] <= now:
            del self._entries[key]
            return None
        return entry

    async def incr(self, key: str, ttl_seconds: int) -> int:
        require_ttl(ttl_seconds)
        now = self._now()
        value, expires_at = self._live(key, now) or (0, now + ttl_seconds)
        self._entries[key] = (value + 1, expires_at)
        return value + 1

    async def counter(self, key: str) -> Counter:
        now = self._now()
        entry = self._live(key, now)
        if entry is None:
            return Counter(0, 0)
        # Rounded to a microsecond first: (t + ttl) - t in floating point can exceed ttl.
        return Counter(entry[0], math.ceil(round(entry[1] - now, 6)))

    async def set_flag(self, key: str, ttl_seconds: int) -> None:
        require_ttl(ttl_seconds)
        self._entries[key] = (1, self._now() + ttl_seconds)

    async def has_flag(self, key: str) -> bool:
        return self._live(key, self._now()) is not None

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


class MemoryDoorbell(Doorbell):
    """Fan-out to subscribers of this process, each with its own bounded inbox."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Inbox]] = {}
        self._open: set[Inbox] = set()
        self._closed = False

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("the doorbell is closed")

    async def ring(self, channel: str, payload: bytes) -> None:
        self._require_open()
        ring = Ring(channel, payload)
        for inbox in self._subscribers.get(channel, ()):
            inbox.put(ring)

    def subscribe(self, *channels: str, backlog: int | None = None) -> Subscription:
        self._require_open()
        if not channels:
            raise ValueError("subscribe to at least one channel")
        inbox = Inbox(backlog or self._queue_size)
        return Subscription(self._listen(frozenset(channels), inbox), inbox)

    async def _listen(
        self, channels: frozenset[str], inbox: Inbox
    ) -> AsyncGenerator[Ring | Resync, None]:
        if self._closed:  # closed between subscribe() and the first iteration
            return
        self._open.add(inbox)
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(inbox)
        try:
            yield Resync("subscribed")
            while (item := await inbox.get()) is not None:
                yield item
        finally:
            self._open.discard(inbox)
            for channel in channels:
                members = self._subscribers.get(channel)
                if members is not None:
                    members.discard(inbox)
                    if not members:
                        del self._subscribers[channel]

    async def subscriber_count(self, channel: str) -> int:
        """Live subscriptions to ``channel`` in this process."""
        return len(self._subscribers.get(channel, ()))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for inbox in self._open:
            inbox.end()


class MemoryPresenceBook(PresenceBook):
    """Claims in a dict (user -> node -> deadline on a monotonic clock): one process's view,
    which in embedded mode is the whole cluster."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._claims: dict[str, dict[str, float]] = {}

    def _live(self, user: str) -> dict[str, float]:
        """``user``'s unexpired claims (expired ones dropped)."""
        now = self._clock()
        claims = {n: d for n, d in self._claims.get(user, {}).items() if d > now}
        if claims:
            self._claims[user] = claims
        else:
            self._claims.pop(user, None)
        return claims

    async def arrive(self, user: str, node: str, ttl_seconds: int) -> bool:
        require_ttl(ttl_seconds)
        claims = self._live(user)
        first = not claims
        claims[node] = self._clock() + ttl_seconds
        self._claims[user] = claims
        return first

    async def depart(self, user: str, node: str) -> bool:
        self._claims.get(user, {}).pop(node, None)
        return not self._live(user)

    async def renew(self, users: Collection[str], node: str, ttl_seconds: int) -> None:
        require_ttl(ttl_seconds)
        deadline = self._clock() + ttl_seconds
        for user in users:
            self._claims.setdefault(user, {})[node] = deadline

    async def online(self, users: Collection[str]) -> set[str]:
        return {user for user in users if self._live(user)}

    async def close(self) -> None:
        self._claims.clear()
