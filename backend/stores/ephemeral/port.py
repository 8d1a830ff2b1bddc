"""Ephemeral state ports: a key-value store with expiry, the doorbell (pub/sub), and the
presence book (which chat nodes hold a connection of whom).

Neither is a record of anything: losing their contents must never lose data, only cost a
throttle window, a deny-list entry until the token expires anyway, or a resync.
Adapters: Redis (cluster mode) and in-process memory (embedded mode).
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.stores.ephemeral.inbox import Subscription


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter as read: ``Counter(0, 0)`` when it is absent or expired."""

    value: int
    seconds_left: int
    """Whole seconds until the window ends, rounded up. 0 for a counter without an expiry,
    which ``incr`` never leaves behind (the next ``incr`` gives it its window)."""


class KeyValue(abc.ABC):
    """Counters and flags that expire. Keys are namespaced by the adapter's prefix."""

    @abc.abstractmethod
    async def incr(self, key: str, ttl_seconds: int) -> int:
        """Add one to a counter and return the new value.

        The expiry is set when the counter is created and not extended by later increments,
        so a counter describes a fixed window that starts with its first hit.
        """

    @abc.abstractmethod
    async def counter(self, key: str) -> Counter:
        """The counter's value and the time left in its window, read together."""

    @abc.abstractmethod
    async def set_flag(self, key: str, ttl_seconds: int) -> None:
        """Mark a key present for ``ttl_seconds`` (overwrites an earlier expiry)."""

    @abc.abstractmethod
    async def has_flag(self, key: str) -> bool:
        """Whether the key is present and unexpired."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove keys; absent keys are ignored."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True, slots=True)
class Ring:
    """One doorbell ring: ``payload`` on ``channel``."""

    channel: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Resync:
    """The subscription was (or may have been) interrupted: rings may have been missed.

    Subscribers must treat this as "go and read the record" (history), never ignore it.
    """

    reason: str


class Doorbell(abc.ABC):
    """Best-effort fan-out notifications. A doorbell, never the record."""

    @abc.abstractmethod
    async def ring(self, channel: str, payload: bytes) -> None:
        """Publish ``payload`` to every current subscriber of ``channel``."""

    async def ring_many(self, rings: Sequence[Ring]) -> None:
        """Publish every ring, in order; an adapter may send them in one round trip. On an
        error any of them may have been published."""
        for ring in rings:
            await self.ring(ring.channel, ring.payload)

    @abc.abstractmethod
    def subscribe(self, *channels: str, backlog: int | None = None) -> Subscription:
        """Yield rings on ``channels`` until the subscription is closed (``aclose``).

        The first item is always a ``Resync("subscribed")`` once the subscription is live, so
        a subscriber knows from when on it can rely on rings. After a lost connection the
        adapter reconnects by itself and yields another ``Resync``. At most ``backlog`` items
        wait (the adapter's default if None); past that they are traded for a
        ``Resync("overflow")`` (``inbox.py``).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and end every open subscription."""


class PresenceBook(abc.ABC):
    """Which chat nodes hold a connection of each user: presence across the cluster.

    Every node claims the users connected to it; a claim lapses ``ttl_seconds`` after it was
    made or last renewed, so the claims of a node that died without saying goodbye end by
    themselves. A user is online while any live claim names them.
    """

    @abc.abstractmethod
    async def arrive(self, user: str, node: str, ttl_seconds: int) -> bool:
        """Claim ``user`` for ``node``; True if no node had a live claim before (the user
        just came online)."""

    @abc.abstractmethod
    async def depart(self, user: str, node: str) -> bool:
        """Drop ``node``'s claim on ``user``; True if no live claim remains (the user just
        went offline)."""

    @abc.abstractmethod
    async def renew(self, users: Collection[str], node: str, ttl_seconds: int) -> None:
        """Renew (or re-make) ``node``'s claims on ``users``."""

    @abc.abstractmethod
    async def online(self, users: Collection[str]) -> set[str]:
        """Those of ``users`` with a live claim."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""
