"""A WebSocket client that behaves as docs/protocol.md tells real clients to behave.

It keeps one socket to one of the chat nodes and, when the socket drops, reconnects to the
next node that answers. It applies ``message`` frames in seq order per room and fills every
gap with ``history after=last``: after a ``resync``, after every reconnect (``sync`` says
each room's last seq) and whenever a message skips ahead. A ``send`` answered
``unavailable`` is sent again with the same ``msg_id`` after a pause, and every send still
unanswered when the socket drops is sent again, same ``msg_id``, once a socket is back.

``gap_fill=False`` makes the broken client of a negative control: it shows what is pushed
live and nothing else (no sync, no history, resync ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

STALL_SECONDS = 45.0
"""A socket with requests waiting and not a single frame for this long is taken for dead:
closed, reconnected, and the waiting sends sent again. On a live socket a client waits for
the answer (the server answers every request, in order): resending there on a timer only
adds duplicates to an overloaded server."""
RETRY_PAUSE = 0.3
HISTORY_PAGE = 500


class Backoff(Protocol):
    """Reconnect pauses, e.g. ``tui.client.backoff.Backoff`` (exponential, full jitter)."""

    def next_delay(self) -> float: ...

    def reset(self) -> None: ...


class Disconnected(Exception):
    """The socket dropped while a request waited for its answer."""


@dataclass
class Sent:
    msg_id: str
    room: str
    sender: str
    ciphertext: str
    accepted_at: float | None = None


@dataclass
class Ledger:
    """What the clients of one test sent and which sends the server acked."""

    sent: dict[str, Sent] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    """msg_id → error code of a send answered with an error that is not worth a retry."""
    retried: Counter[str] = field(default_factory=Counter)
    """Why sends had to be sent again: error codes, "no answer", "disconnected"."""

    @property
    def accepted(self) -> set[str]:
        return {m for m, s in self.sent.items() if s.accepted_at is not None}

    @property
    def unacked(self) -> int:
        return sum(1 for s in self.sent.values() if s.accepted_at is None) - len(self.refused)


class FaultClient:
    """One user's device, member of one room, on one socket to one of ``urls``."""

    def __init__(
        self,
        user: str,
        device: str,
        token: str,
        room: str,
        urls: list[str],
        ledger: Ledger,
        *,
        gap_fill: bool = True,
        window: int = 64,
        backoff: Backoff | None = None,
    ) -> None:
        self.user, self.device, self.token, self.room = user, device, token, room
        self.urls = urls
        self.node = 0
        """Index in ``urls`` of the node this client uses (it moves on when that one fails)."""
        self.ledger = ledger
        self.gap_fill = gap_fill
        self.shown: dict[int, str] = {}
        """seq → msg_id of every message this device shows, the way a real client would."""
        self.last = 0
        self.frames = 0
        self.redundant = 0
        self.conflicts: list[tuple[int, str, str]] = []
        self.foreign = 0
        self.resyncs = 0
        self.resync_reasons: Counter[str] = Counter()
        self.reconnects = 0
        self.stalls = 0
        self.close_codes: Counter[int] = Counter()
        """How the server closed this client's sockets (1001: going away, 1006: abrupt …)."""
        self.backoff = backoff
        """Pauses before each reconnect attempt (the first one too: a whole node's clients
        dropped at once should not come back at once), or None for the built-in doubling
        pause after a failed attempt only."""
        self.connected_at = 0.0
        """``time.monotonic()`` of the last successful (re)connect."""
        self._last_frame = 0.0
        self._buffer: dict[int, dict[str, Any]] = {}
        self._filling = False
        self._refill = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 1
        self._ready = asyncio.Event()
        self._window = asyncio.Semaphore(window)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    @property
    def failure(self) -> str:
        """Why this client's connection task ended early (a bug in the client), or ''."""
        runner = self._runner
        if runner is None or not runner.done() or runner.cancelled():
            return ""
        exc = runner.exception()
        return f"{type(exc).__name__}: {exc}" if exc else "ended"

    # --- connection --------------------------------------------------------------------------
    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._runner = asyncio.create_task(self._run(), name=f"client {self.user}")
        async with asyncio.timeout(60):
            await self._ready.wait()

    async def close(self) -> None:
        self._closing = True
        for task in [*self._tasks, *([self._runner] if self._runner else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        """Connect, read until the socket drops, reconnect; for as long as the client lives."""
        pause = 0.1
        first = True
        retrying = False
        while not self._closing:
            if retrying and self.backoff is not None:
                await asyncio.sleep(self.backoff.next_delay())
            retrying = True
            try:
                await self._connect()
            except (aiohttp.ClientError, OSError, TimeoutError, Disconnected, AssertionError):
                self.node = (self.node + 1) % len(self.urls)  # that node is down: try the next
                if self.backoff is None:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
                continue
            pause = 0.1
            if self.backoff is not None:
                self.backoff.reset()
            self.connected_at = time.monotonic()
            if not first:
                self.reconnects += 1
            first = False
            watchdog = asyncio.create_task(self._watch_for_stall())
            try:
                with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                    await self._read()  # returns when the socket is gone
            finally:
                watchdog.cancel()
            self._ready.clear()
            if self._ws is not None and self._ws.close_code is not None:
                self.close_codes[int(self._ws.close_code)] += 1
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(Disconnected())
            self._pending.clear()

    async def _watch_for_stall(self) -> None:
        self._last_frame = time.monotonic()
        while True:
            await asyncio.sleep(5)
            quiet = time.monotonic() - self._last_frame
            if self._pending and quiet > STALL_SECONDS and self._ws is not None:
                self.stalls += 1
                await self._ws.close()
                return

    async def _connect(self) -> None:
        assert self._http is not None
        ws = await self._http.ws_connect(
            self.urls[self.node],
            # No receive timeout: a quiet room is not a dead socket (the server pings).
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
        )
        self._ws, self._next_id = ws, 2
        await ws.send_json({"id": 1, "type": "auth", "token": self.token, "device": self.device})
        msg = await ws.receive(timeout=10)
        reply = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {}
        if not reply.get("success"):
            await ws.close()
            raise Disconnected(f"auth failed: {msg.type} {reply.get('error')}")
        self._ready.set()
        if self.gap_fill:
            self._spawn(self._catch_up())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            self.frames += 1
            self._last_frame = time.monotonic()
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "result":
                fut = self._pending.pop(frame.get("id", 0), None)
                if fut is not None and not fut.done():
                    fut.set_result(frame)
            elif kind == "message":
                self._apply(frame)
            elif kind == "resync":
                self.resyncs += 1
                self.resync_reasons[str(frame.get("reason"))] += 1
                if self.gap_fill:
                    self._spawn(self._catch_up())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send one request on the current socket; its result (``Disconnected`` if it drops)."""
        await self._ready.wait()
        ws = self._ws
        assert ws is not None
        rid, self._next_id = self._next_id, self._next_id + 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send_json({"id": rid, **frame})
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            self._pending.pop(rid, None)
            raise Disconnected() from exc
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)

    # --- sending -----------------------------------------------------------------------------
    async def send_stream(self, count: int, rate: float) -> None:
        """Send ``count`` new messages at ``rate`` per second; each is retried until acked."""
        began = time.monotonic()
        for n in range(count):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._window.acquire()
            msg_id = uuid.uuid4().hex
            sent = Sent(msg_id, self.room, self.user, f"ct:{self.user}:{n}:{msg_id[:8]}")
            self.ledger.sent[msg_id] = sent
            self._spawn(self._deliver(sent))

    async def _deliver(self, sent: Sent) -> None:
        frame = {"type": "send", "msg_id": sent.msg_id, "room": sent.room}
        frame["ciphertext"] = sent.ciphertext
        try:
            while True:
                try:
                    reply = await self.request(frame)
                except Disconnected:
                    why = "disconnected"
                else:
                    if reply.get("success"):
                        sent.accepted_at = time.monotonic()
                        return
                    why = reply.get("error", {}).get("code", "")
                    if why not in ("unavailable", "rate_limited", "internal"):
                        self.ledger.refused[sent.msg_id] = why
                        return
                # Sent again with the same msg_id (after a reconnect, if the socket dropped).
                self.ledger.retried[why] += 1
                await asyncio.sleep(RETRY_PAUSE)
        finally:
            self._window.release()

    def settled(self) -> bool:
        """Whether every send of this client has an answer that ends its retries."""
        return not any(
            s.accepted_at is None and s.msg_id not in self.ledger.refused
            for s in self.ledger.sent.values()
            if s.sender == self.user
        )

    # --- receiving ---------------------------------------------------------------------------
    def _apply(self, frame: dict[str, Any]) -> None:
        if frame.get("room") != self.room:
            self.foreign += 1
            return
        seq, msg_id = int(frame["seq"]), str(frame["msg_id"])
        if seq in self.shown:
            if self.shown[seq] != msg_id:
                self.conflicts.append((seq, self.shown[seq], msg_id))
            else:
                self.redundant += 1
            return
        if not self.gap_fill:  # the broken client: show whatever comes, when it comes
            self.shown[seq] = msg_id
            self.last = max(self.last, seq)
            return
        if seq != self.last + 1:
            if seq > self.last + 1:
                self._buffer[seq] = frame
                self._spawn(self._fill())
            return
        self.shown[seq] = msg_id
        self.last = seq
        while (nxt := self._buffer.pop(self.last + 1, None)) is not None:
            self.shown[self.last + 1] = str(nxt["msg_id"])
            self.last += 1
        for stale in [s for s in self._buffer if s <= self.last]:
            self._apply(self._buffer.pop(stale))

    async def _catch_up(self) -> None:
        """After (re)connecting or a resync: ask for the room's last seq, fill up to it."""
        with contextlib.suppress(Disconnected):
            reply = await self.request({"type": "sync", "rooms": [self.room]})
            if reply.get("success") and reply["result"]["rooms"].get(self.room, 0) > self.last:
                await self._fill()

    async def _fill(self) -> None:
        """``history after=last`` until the room has no more; one filler at a time."""
        if self._filling:
            self._refill = True
            return
        self._filling = True
        try:
            self._refill = True
            while self._refill:
                self._refill = False
                while True:
                    reply = await self.request(
                        {
                            "type": "history",
                            "room": self.room,
                            "after": self.last,
                            "limit": HISTORY_PAGE,
                        }
                    )
                    messages = reply.get("result", {}).get("messages", [])
                    for m in messages:
                        self._apply({**m, "room": self.room})
                    if len(messages) < HISTORY_PAGE:
                        break
        except Disconnected:
            pass  # the reconnect starts another catch-up
        finally:
            self._filling = False
