"""What the client tells its UI: typed events, delivered to callbacks and async iterators.

The UI (Textual screens, the CLI's ``tail``) never sees a wire frame: it sees these. Each
subscriber has its own bounded queue so a slow one cannot stall the client; when a queue is
full the oldest *ephemeral* events (typing, presence) are the ones dropped, never messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger("sealchat.client")


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Base of every event."""


@dataclass(frozen=True, slots=True)
class MessageShown(ClientEvent):
    """A room message decrypted and verified; ``content`` is the decrypted JSON object."""

    room: str
    seq: int
    msg_id: str
    sender: str
    device: str
    ts: datetime
    content: dict[str, Any]
    verified: bool = True
    """The sender device is verified (SAS/safety number), not merely trusted on first use."""

    @property
    def text(self) -> str:
        body = self.content.get("body")
        return body if isinstance(body, str) else ""


@dataclass(frozen=True, slots=True)
class MessageUndecryptable(ClientEvent):
    """A room message that cannot be read (yet). Kept and retried, never dropped."""

    room: str
    seq: int
    msg_id: str
    sender: str
    device: str
    ts: datetime
    reason: str
    """For a person: e.g. "waiting for keys from bob" or "rejected: replayed message"."""
    retryable: bool = True
    code: str = ""
    """For code: ``no_session``, ``replay``, ``tampered``, ``sender_mismatch``, ..."""


@dataclass(frozen=True, slots=True)
class MessageExpired(ClientEvent):
    """A disappearing message's time is up: remove it from view (the server blanked it)."""

    room: str
    seq: int
    msg_id: str


@dataclass(frozen=True, slots=True)
class MemberChanged(ClientEvent):
    room: str
    action: str
    actor: str
    user: str | None
    member_count: int
    verified: bool | None = None
    """The room's signed membership log checked out (None: not checked yet)."""
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class RoomVerified(ClientEvent):
    """A room's signed membership log was checked: only ``members`` get room keys."""

    room: str
    members: tuple[str, ...]
    pending: tuple[int, ...] = ()
    """Log entries not signed (yet): they admit no one until they are."""
    rejected: tuple[tuple[int, str], ...] = ()
    """Entries with a bad signature or against the room's rules (a forged change)."""


@dataclass(frozen=True, slots=True)
class RoomNotice(ClientEvent):
    """Invites, deletions, friend requests: things that change lists, not the chat log."""

    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PresenceChanged(ClientEvent):
    user: str
    online: bool


@dataclass(frozen=True, slots=True)
class TypingChanged(ClientEvent):
    room: str
    user: str
    active: bool


@dataclass(frozen=True, slots=True)
class ReadMoved(ClientEvent):
    room: str
    user: str
    seq: int


@dataclass(frozen=True, slots=True)
class IdentityWarning(ClientEvent):
    """A peer's identity key changed: sending to them is held until the user acknowledges."""

    user: str
    detail: str
    rooms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityAlert(ClientEvent):
    """Something was rejected for a security reason (tampering, forged sender, injected member)."""

    room: str | None
    reason: str
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationUpdate(ClientEvent):
    """A step of an emoji (SAS) verification; ``sas`` is ``tui.crypto.SasUpdate``."""

    sas: Any


@dataclass(frozen=True, slots=True)
class ConnectionState(ClientEvent):
    state: str
    """``connecting``, ``online``, ``offline`` (retrying), ``logged_out`` or ``closed``."""
    outbox: int
    detail: str = ""
    retry_in: float | None = None


EPHEMERAL = (PresenceChanged, TypingChanged, ReadMoved)


#: Above this many unread events a subscriber starts losing ephemeral ones (oldest first).
SOFT_LIMIT = 1000


class _Subscriber:
    """An unbounded queue that sheds ephemeral events, never messages, when it grows long."""

    def __init__(self) -> None:
        self.items: deque[ClientEvent | None] = deque()
        self.ready = asyncio.Event()

    def offer(self, event: ClientEvent | None) -> None:
        if len(self.items) >= SOFT_LIMIT:
            for i, item in enumerate(self.items):
                if isinstance(item, EPHEMERAL):
                    del self.items[i]
                    break
            else:
                if isinstance(event, EPHEMERAL):
                    return
        self.items.append(event)
        self.ready.set()

    async def take(self) -> ClientEvent | None:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


class EventHub:
    def __init__(self) -> None:
        self._callbacks: list[Callable[[ClientEvent], Any]] = []
        self._subscribers: list[_Subscriber] = []

    def on(self, callback: Callable[[ClientEvent], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (synchronously; keep it short)."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def emit(self, event: ClientEvent) -> None:
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:
                log.exception("event callback failed", extra={"event": type(event).__name__})
        for sub in self._subscribers:
            sub.offer(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[ClientEvent]]:
        """``async with hub.subscribe() as events: async for ev in events: ...``"""
        sub = _Subscriber()
        self._subscribers.append(sub)

        async def iterate() -> AsyncIterator[ClientEvent]:
            while (ev := await sub.take()) is not None:
                yield ev

        try:
            yield iterate()
        finally:
            self._subscribers.remove(sub)

    def end(self) -> None:
        """Finish every async iterator (the client closed)."""
        for sub in self._subscribers:
            sub.offer(None)
