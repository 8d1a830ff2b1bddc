"""``ChatClient``: the one facade the TUI and the CLI use.

It owns the HTTP session, the token keeper, the WebSocket and the persisted outbox, applies
room messages strictly in ``seq`` order (duplicates dropped, gaps filled from ``history``, also
after every reconnect and on ``resync``), processes to-device messages (store, then ack), and
tells the UI what happened through ``events`` (see ``tui/client/events.py``).

Everything the server sends is handled by one dispatcher task, in arrival order, so a gap fill
(which waits for a ``history`` answer) never races the live frames behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import datetime
from typing import Any

import aiohttp

from backend.protocol.errors import ErrorCode
from backend.protocol.frames import (
    Frame,
    FriendEvent,
    InviteEvent,
    LogSigned,
    MemberEvent,
    Message,
    Presence,
    ReadEvent,
    Resync,
    RoomDeleted,
    RoomInvite,
    ToDevice,
    TypingEvent,
)
from tui.client.api import Api
from tui.client.backoff import Backoff
from tui.client.cipher import RoomCipher
from tui.client.connection import Connection
from tui.client.e2ee import E2ee
from tui.client.errors import ApiError, ClientError, ConnectionLost, NotLoggedIn, ServerUnreachable
from tui.client.events import (
    ClientEvent,
    ConnectionState,
    EventHub,
    PresenceChanged,
    ReadMoved,
    RoomNotice,
    TypingChanged,
)
from tui.client.rest import Rest
from tui.client.room_actions import RoomActions
from tui.client.store import ClientStore, Outbox, Outgoing
from tui.client.tokens import REFRESH_AT_FRACTION, TokenKeeper, TokenStore
from tui.crypto import Engine

log = logging.getLogger("sealchat.client")

#: Messages fetched for a room this device has never synced (older ones cannot be decrypted
#: by a new device anyway; ``history before=`` pages further back on demand).
FIRST_PAGE = 50
PAGE = 100
#: Pause before resending after ``rate_limited``.
RATE_PAUSE = 1.0


def new_msg_id() -> str:
    """128 random bits as 32 hex digits: the client-made id the server dedupes on."""
    return secrets.token_hex(16)


class _Opened:
    """Dispatcher marker: a socket just authenticated."""


class _Settled:
    """Dispatcher marker: everything queued before it has been processed."""

    def __init__(self, fut: asyncio.Future[None]) -> None:
        self.fut = fut


class ChatClient:
    def __init__(
        self,
        server: str,
        store: ClientStore,
        tokens: TokenStore,
        *,
        device_id: str | None = None,
        backoff: Backoff | None = None,
        refresh_fraction: float = REFRESH_AT_FRACTION,
    ) -> None:
        self.server = server.rstrip("/")
        self.store = store
        self.outbox = Outbox(store)
        self.device_id = device_id
        self.events = EventHub()
        self.cipher: RoomCipher | None = None
        self.e2ee: E2ee | None = None
        self._http = aiohttp.ClientSession()
        self.keeper = TokenKeeper(tokens, self._refresh, fraction=refresh_fraction)
        self.api = Api(Rest(self.server, self._http, self.keeper))
        self.rooms = RoomActions(self.api, None)
        """Membership changes, signed by this device once E2EE is attached."""
        self._backoff = backoff
        self._conn: Connection | None = None
        self._inbox: asyncio.Queue[Frame | _Opened | _Settled] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._state = "closed"
        self._synced = asyncio.Event()
        self._sync_error: Exception | None = None

    def attach(self, engine: Engine) -> E2ee:
        """Encrypt with ``engine`` from now on (the profile's device keys)."""
        self.e2ee = E2ee(engine, self.api, self.request, self.events.emit)
        self.cipher = self.e2ee
        self.device_id = engine.device_id
        self.rooms = RoomActions(self.api, self.e2ee)
        return self.e2ee

    async def _refresh(self, refresh_token: str) -> dict[str, Any]:
        return await self.api.refresh(refresh_token)

    # --- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def user(self) -> str:
        return self.keeper.user

    @property
    def logged_in(self) -> bool:
        return self.keeper.tokens is not None

    async def login(self, user: str, password: str) -> str:
        body = await self.api.login(user, password)
        self.keeper.adopt(body)
        return str(body["user"])

    async def logout(self) -> None:
        """End the session on the server (every service refuses its tokens from now on)."""
        try:
            if self.logged_in:
                await self.api.logout()
        except (ApiError, NotLoggedIn):
            pass  # already ended: forgetting it locally is all that is left
        finally:
            self.keeper.forget()

    def connect(self) -> None:
        """Open the WebSocket (and keep it open) and start processing what it brings."""
        if self._conn is not None:
            return
        if not self.logged_in:
            raise NotLoggedIn()
        self._conn = Connection(
            self.server,
            self._http,
            self.keeper,
            device=self.device_id,
            on_event=self._inbox.put_nowait,
            on_open=lambda: self._inbox.put_nowait(_Opened()),
            on_state=self._on_state,
            backoff=self._backoff,
        )
        self._conn.start()
        self._tasks.append(asyncio.create_task(self._dispatch(), name="sealchat-dispatch"))
        self._tasks.append(asyncio.create_task(self._keep_token_fresh(), name="sealchat-token"))

    async def wait_synced(self, within: float | None = 60) -> None:
        """Until the first connect finished its catch-up (outbox, to-device, history)."""
        conn = self._conn
        async with asyncio.timeout(within):
            while not self._synced.is_set():
                if conn is not None and conn.fatal:
                    raise NotLoggedIn(conn.fatal)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._synced.wait()
        if self._sync_error is not None:
            err, self._sync_error = self._sync_error, None
            if isinstance(err, ClientError):
                raise err
            raise ClientError(f"catching up with the server failed ({type(err).__name__})")

    async def settle(self, within: float | None = 60) -> None:
        """Until every frame received so far has been processed (keys, gap fills)."""
        fut = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(_Settled(fut))
        async with asyncio.timeout(within):
            await fut

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._on_state("closed", "", None)
        self.events.end()
        await self._http.close()

    def _on_state(self, state: str, detail: str, retry_in: float | None) -> None:
        self._state = state
        self.events.emit(ConnectionState(state, len(self.outbox), detail, retry_in))

    @property
    def state(self) -> str:
        return self._state

    # --- requests ----------------------------------------------------------------------------
    async def request(
        self, type_: str, *, wait: float | None = 60, **fields: Any
    ) -> dict[str, Any]:
        if self._conn is None:
            self.connect()
        assert self._conn is not None
        return await self._conn.request(type_, wait=wait, **fields)

    async def history(
        self, room: str, *, after: int | None = None, before: int | None = None, limit: int = PAGE
    ) -> list[Message]:
        fields: dict[str, Any] = {"room": room, "limit": limit}
        if after is not None:
            fields["after"] = after
        if before is not None:
            fields["before"] = before
        answer = await self.request("history", **fields)
        return [Message.model_validate({"type": "message", **m}) for m in answer["messages"]]

    async def typing(self, room: str, active: bool) -> bool:
        """Tell the room's members this user is (not) typing; False when throttled."""
        return bool((await self.request("typing", room=room, active=active)).get("sent"))

    async def mark_read(self, room: str, seq: int) -> int:
        """Move this user's read marker forward; the marker the server keeps."""
        return int((await self.request("read", room=room, seq=seq))["seq"])

    async def send(
        self, room: str, content: dict[str, Any], *, ttl: int | None = None, kind: str = "m"
    ) -> str:
        """Encrypt ``content`` for ``room``, queue it durably, and return once the server
        acked it (resent with the same ``msg_id`` across reconnects until then)."""
        if self.cipher is None:
            raise RuntimeError("no cipher attached: messages are only ever sent encrypted")
        if ttl is not None:
            content = {**content, "expires_in": ttl}
        ciphertext = await self.cipher.seal(room, content)
        item = Outgoing(new_msg_id(), room, ciphertext, kind, ttl)
        return await self.send_sealed(item)

    async def send_sealed(self, item: Outgoing) -> str:
        """Queue an already encrypted message and wait for its ack."""
        fut = asyncio.get_running_loop().create_future()
        self._acks[item.msg_id] = fut
        self.outbox.queue(item)
        self._on_state(self._state, "", None)
        try:
            with contextlib.suppress(ConnectionLost, TimeoutError):
                await self._push(item)
            await fut  # acked by _push, or by the outbox flush after the next connect
        finally:
            self._acks.pop(item.msg_id, None)
        return item.msg_id

    async def _push(self, item: Outgoing) -> None:
        """One attempt to hand ``item`` to the server; acked ⇒ removed from the outbox."""
        fields: dict[str, Any] = {
            "msg_id": item.msg_id,
            "room": item.room,
            "ciphertext": item.ciphertext,
            "kind": item.kind,
        }
        if item.ttl is not None:
            fields["ttl"] = item.ttl
        while True:
            try:
                await self.request("send", **fields)
                break
            except ApiError as exc:
                if exc.code == ErrorCode.RATE_LIMITED:
                    await asyncio.sleep(RATE_PAUSE)
                    continue
                if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
                    raise ConnectionLost(exc.message) from exc
                # Refused for good (not a member, too large, bad frame): it never will be.
                self.outbox.acked(item.msg_id)
                self._settle(item.msg_id, exc)
                return
        self.outbox.acked(item.msg_id)
        self._settle(item.msg_id, None)
        self._on_state(self._state, "", None)

    def _settle(self, msg_id: str, exc: Exception | None) -> None:
        fut = self._acks.get(msg_id)
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    # --- what the server sends ---------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, _Settled):
                    if not item.fut.done():
                        item.fut.set_result(None)
                elif isinstance(item, _Opened):
                    await self._caught_up()
                else:
                    await self._handle(item)
            except (ConnectionLost, NotLoggedIn):
                continue  # the next connect catches up again
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(item, _Opened):
                    # Say so to whoever waits for the catch-up instead of letting them hang.
                    self._sync_error = exc
                    self._synced.set()
                log.exception(
                    "processing a server frame failed", extra={"frame": type(item).__name__}
                )
            # ``get`` does not suspend while frames are waiting: without this, a backlog (a
            # burst, a catch-up) would be decrypted and stored in one go, and a UI sharing
            # this event loop would freeze until the last one was done.
            await asyncio.sleep(0)

    async def _caught_up(self) -> None:
        """After every (re)connect: keys first, then the outbox, then every room's gap."""
        if self.cipher is not None:
            await self.cipher.on_online()
        for item in self.outbox.pending():
            await self._push(item)
        latest = (await self.request("sync"))["rooms"]
        for room, last in latest.items():
            await self._fill(room, int(last))
        self._sync_error = None
        self._synced.set()

    async def _fill(self, room: str, upto: int | None = None) -> None:
        """Apply every message of ``room`` after our last seq (up to ``upto`` when known)."""
        last = self.store.last_seq(room)
        if upto is not None and upto <= last:
            return
        if last == 0 and upto is not None and upto > FIRST_PAGE:
            page = await self.history(room, limit=FIRST_PAGE)
            for msg in page:
                await self._apply(msg, trusted_order=True)
            return
        while True:
            page = await self.history(room, after=self.store.last_seq(room), limit=PAGE)
            for msg in page:
                await self._apply(msg)
            if len(page) < PAGE:
                return

    async def _apply(self, msg: Message, *, trusted_order: bool = False) -> None:
        last = self.store.last_seq(msg.room)
        if msg.seq <= last:
            return  # a duplicate (a resend rung twice, or live and history overlapping)
        if msg.seq != last + 1 and not trusted_order:
            await self._fill(msg.room)
            return
        shown: list[ClientEvent] = []
        if self.cipher is not None:
            shown = await self.cipher.open(msg)
        self.store.set_last_seq(msg.room, msg.seq)
        for ev in shown:
            self.events.emit(ev)

    async def _handle(self, frame: Frame) -> None:
        if isinstance(frame, Message):
            await self._apply(frame)
        elif isinstance(frame, ToDevice):
            await self._to_device(frame)
        elif isinstance(frame, Resync):
            latest = (await self.request("sync"))["rooms"]
            for room, last in latest.items():
                await self._fill(room, int(last))
        elif isinstance(frame, MemberEvent):
            if self.cipher is not None:
                for ev in await self.cipher.on_member_event(frame):
                    self.events.emit(ev)
        elif isinstance(frame, LogSigned):
            if self.cipher is not None:
                for ev in await self.cipher.membership_changed(frame.room):
                    self.events.emit(ev)
        elif isinstance(frame, Presence):
            self.events.emit(PresenceChanged(frame.user, frame.online))
        elif isinstance(frame, TypingEvent):
            self.events.emit(TypingChanged(frame.room, frame.user, frame.active))
        elif isinstance(frame, ReadEvent):
            self.events.emit(ReadMoved(frame.room, frame.user, frame.seq))
        elif isinstance(frame, RoomInvite | InviteEvent | RoomDeleted | FriendEvent):
            data = frame.model_dump(mode="json", by_alias=True, exclude_none=True)
            self.events.emit(RoomNotice(frame.type, data))

    async def _to_device(self, frame: ToDevice) -> None:
        seen_key = f"to_device_seen:{frame.id}"
        if self.store.setting(seen_key) is None:
            if self.cipher is not None:
                for ev in await self.cipher.on_to_device(frame):
                    self.events.emit(ev)
            self.store.set_setting(seen_key, datetime.now().isoformat())
        await self.request("ack_to_device", ids=[frame.id])

    # --- keeping the token fresh -------------------------------------------------------------
    async def _keep_token_fresh(self) -> None:
        """Refresh ahead of expiry, so REST calls never meet an expired token."""
        while True:
            wait = self.keeper.seconds_until_refresh()
            if wait is None:
                return
            await asyncio.sleep(max(wait, 1.0))
            try:
                await self.keeper.access()
            except NotLoggedIn:
                return
            except (ApiError, ServerUnreachable, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("token refresh failed; retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(30)
