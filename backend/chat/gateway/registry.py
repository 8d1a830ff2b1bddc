"""Who is connected: authenticated connections by user and by device, to push events to.

``push`` encodes a frame once, builds its WebSocket frame once (``wire.text_frame``) and
queues the same bytes on every matching connection; it
never waits for a socket (each connection has its own bounded queue and writer), so one slow
client cannot hold up a fan-out. Presence changes (a user's first connection opens, their
last one closes) go to ``presence``, a hook the service wires to the user's friends; every new
connection is handed to ``signed_in``, which tells it who of its friends is online already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from backend.chat.gateway.watch import Watch
from backend.chat.gateway.wire import text_frame
from backend.protocol.codec import BadFrame, encode, from_json_value
from backend.protocol.errors import CloseCode
from backend.protocol.frames import SERVER_FRAMES, Frame

if TYPE_CHECKING:
    from backend.chat.gateway.connection import Connection

log = logging.getLogger("sealchat.gateway")

SESSION_ENDED_REASON = "session ended: log in again"
PresenceHook = Callable[[str, bool], Awaitable[None]]
DeviceHook = Callable[["Connection"], Awaitable[None]]
"""``await hook(user, online)``: on a user's first connection (True) and last one (False)."""

K = TypeVar("K")

SHUTDOWN_REASON = "server shutting down: reconnect shortly"


async def close_connections(conns: Iterable[Connection], code: CloseCode, reason: str) -> None:
    """Close every connection (pending frames dropped) and wait until each has finished."""
    snapshot = list(conns)  # a copy: connections leave the collection as they close
    for conn in snapshot:
        conn.close(code, reason, discard=True)
    await asyncio.gather(*(conn.wait_closed() for conn in snapshot))


class SignInGate:
    """At most ``limit`` sockets signing in at once on this node; the rest wait their turn,
    in order (``chat.signin_concurrency``). A sign-in is a handful of store round trips;
    without a bound, a node's whole reconnect storm has them in flight at once."""

    def __init__(self, limit: int) -> None:
        self._turns = asyncio.Semaphore(limit)
        self.waiting = 0
        """Sockets that sent their ``auth`` frame and wait for a turn (a metric)."""

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *_: object) -> None:
        self._turns.release()


class Registry:
    """Authenticated connections of this process, the watch over every socket (its
    auth deadline, heartbeat and token expiry) and the gate sign-ins pass."""

    def __init__(self, *, signin_concurrency: int = 32) -> None:
        self._users: dict[str, set[Connection]] = {}
        self._devices: dict[tuple[str, str], set[Connection]] = {}
        self.watch = Watch()
        self.signing_in = SignInGate(signin_concurrency)
        self.presence: PresenceHook | None = None
        self.device_online: DeviceHook | None = None
        """Called when a connection that names its device signs in (pending to-device)."""
        self.signed_in: DeviceHook | None = None
        """Called for every connection that signs in (the presence snapshot)."""

    def __len__(self) -> int:
        return sum(len(conns) for conns in self._users.values())

    def users_online(self) -> int:
        return len(self._users)

    def online_users(self) -> list[str]:
        """Every user with a connection here."""
        return list(self._users)

    def online(self, user: str) -> bool:
        return user in self._users

    def connections_of(self, user: str) -> frozenset[Connection]:
        return frozenset(self._users.get(user, ()))

    def connections_of_device(self, user: str, device: str) -> frozenset[Connection]:
        return frozenset(self._devices.get((user, device), ()))

    async def add(self, conn: Connection) -> None:
        user, device = conn.principal.user, conn.principal.device
        first = user not in self._users
        self._users.setdefault(user, set()).add(conn)
        if device is not None:
            self._devices.setdefault((user, device), set()).add(conn)
            if self.device_online is not None:
                await self._guarded(self.device_online(conn), "device-online hook")
        if first:
            await self._announce(user, online=True)
        if self.signed_in is not None:
            await self._guarded(self.signed_in(conn), "signed-in hook")

    async def remove(self, conn: Connection) -> None:
        user, device = conn.principal.user, conn.principal.device
        if device is not None:
            _discard(self._devices, (user, device), conn)
        if _discard(self._users, user, conn):
            await self._announce(user, online=False)

    def push(self, users: Iterable[str], frame: Frame, *, exclude: Connection | None = None) -> int:
        """Queue ``frame`` on every connection of ``users``; how many connections got it."""
        return self.push_text(users, encode(frame), exclude=exclude)

    def push_text(
        self, users: Iterable[str], text: str, *, exclude: Connection | None = None
    ) -> int:
        """Like ``push`` for a frame already encoded (one fan-out, many nodes)."""
        return self.push_frame(users, text_frame(text), exclude=exclude)

    def push_frame(
        self, users: Iterable[str], frame: bytes, *, exclude: Connection | None = None
    ) -> int:
        """Queue a whole WebSocket frame (``wire``) on every connection of ``users``."""
        queued = 0
        index = self._users
        for user in dict.fromkeys(users):  # each user once, in order
            conns = index.get(user)
            if conns is None:
                continue
            for conn in tuple(conns):
                if conn is not exclude and conn.enqueue_frame(frame):
                    queued += 1
        return queued

    async def notify(self, users: Sequence[str], event: Mapping[str, Any], /) -> None:
        """Push an event given as a dict (the social graph's ``Notifier``), checked against
        the protocol first so that nothing off-contract reaches a client."""
        frame = from_json_value(dict(event), SERVER_FRAMES)
        if not isinstance(frame, Frame):
            reason = frame.reason if isinstance(frame, BadFrame) else "unknown type"
            log.error(
                "event does not match the protocol; not sent",
                extra={"event_type": str(event.get("type"))[:64], "problem": reason},
            )
            return
        self.push(users, frame)

    def push_all(self, frame: Frame) -> int:
        """Queue ``frame`` on every connection here (a doorbell resync concerns them all)."""
        return self.push_text(tuple(self._users), encode(frame))

    def push_to_device(self, user: str, device: str, frame: Frame) -> int:
        data = text_frame(encode(frame))
        conns = tuple(self._devices.get((user, device), ()))
        return sum(conn.enqueue_frame(data) for conn in conns)

    async def close_session(self, session: str) -> int:
        """Close every socket signed in with a token of ``session`` (logout, token theft)."""
        ended = [
            conn
            for conns in self._users.values()
            for conn in conns
            if conn.principal.session == session
        ]
        await close_connections(ended, CloseCode.AUTH_FAILED, SESSION_ENDED_REASON)
        return len(ended)

    async def close_all(
        self, code: CloseCode = CloseCode.GOING_AWAY, reason: str = SHUTDOWN_REASON
    ) -> None:
        await close_connections(
            [conn for conns in self._users.values() for conn in conns], code, reason
        )

    async def _guarded(self, call: Awaitable[None], what: str) -> None:
        try:
            await call
        except Exception as exc:
            # A failed hook must not cost the user their connection.
            log.error("hook failed", extra={"hook": what, "error": type(exc).__name__})

    async def _announce(self, user: str, *, online: bool) -> None:
        hook = self.presence
        if hook is None:
            return
        try:
            await hook(user, online)
        except Exception as exc:
            # A failed notification must not cost the user their connection.
            log.error("presence hook failed", extra={"error": type(exc).__name__})


def _discard(index: dict[K, set[Connection]], key: K, conn: Connection) -> bool:
    """Remove ``conn`` under ``key``; True if that was the last connection there."""
    conns = index.get(key)
    if conns is None:
        return False
    conns.discard(conn)
    if conns:
        return False
    del index[key]
    return True


class LiveSockets:
    """Every open socket of the gateway, authenticated or not, so shutdown can close them."""

    def __init__(self) -> None:
        self._conns: set[Connection] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._conns)

    def add(self, conn: Connection) -> None:
        self._conns.add(conn)

    def discard(self, conn: Connection) -> None:
        self._conns.discard(conn)

    async def close_all(
        self, code: CloseCode = CloseCode.GOING_AWAY, reason: str = SHUTDOWN_REASON
    ) -> None:
        self.closing = True
        await close_connections(self._conns, code, reason)
