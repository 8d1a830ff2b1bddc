"""One WebSocket connection: an auth phase, then requests answered in order, and its writes.

- Auth phase: the first frame must be ``auth {token}`` within ``chat.auth_deadline_seconds``;
  anything else closes the socket with 4001. Nothing else is read or pushed before it. The
  sign-in (the token and device checks, then the registry's hooks: pending to-device
  messages, the presence snapshot) waits for a turn at the node's gate
  (``chat.signin_concurrency``), so a reconnect storm does not put every socket's store round
  trips in flight at once.
- Liveness: after ``chat.heartbeat_seconds`` without a frame from the peer the socket is
  pinged; still nothing half as long again, and it is dropped. It is closed (4001) when its
  token expires. The auth deadline, the heartbeat and the expiry are the node's ``Watch``
  (one timer per second, not one per socket: ``watch.py``) calling ``look``.
- Requests are handled one at a time, in arrival order, each answered by one ``result``.
  A bad or unknown frame gets an error result; the loop goes on.
- Every outgoing frame (results and pushed events) is a whole WebSocket frame built once
  (``wire.text_frame``; a fan-out hands the same bytes to every recipient) and appended to
  one bounded outbox. The outbox is written to the transport at the end of the event loop's
  current pass, everything waiting in one ``write``: frames never interleave, a producer never
  waits for a socket, and an idle connection has no task of its own. Only when the transport
  pushes back (its buffer is past the high-water mark) does a writer task wait for it to
  drain. A client that lets the outbox fill, or whose socket takes nothing for
  ``chat.send_timeout_seconds`` while frames wait, is cut off with 4008 and catches up from
  history when it reconnects.
- A token bucket limits incoming frames; a client that keeps sending while refused is
  closed with 4009.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.base_protocol import BaseProtocol

from backend.chat.gateway.auth_phase import Principal, authenticate
from backend.chat.gateway.commands import COMMANDS, CommandTable, frame_id
from backend.chat.gateway.ratelimit import TokenBucket
from backend.chat.gateway.wire import PING_FRAME, pong_frame, text_frame
from backend.common.auth_guard import Guard
from backend.common.errors import ApiError
from backend.common.settings import ChatSettings
from backend.common.tokens import LEEWAY_SECONDS
from backend.protocol.codec import decode_request, encode
from backend.protocol.errors import CloseCode, ErrorCode
from backend.protocol.frames import Auth, AuthOk, Frame, Request, Result, Send
from backend.stores.errors import store_unavailable

if TYPE_CHECKING:
    from backend.chat.app import ChatRuntime
    from backend.chat.gateway.registry import Registry

log = logging.getLogger("sealchat.gateway")

TOO_SLOW_REASON = "too slow: reconnect and catch up from history"
EXPIRED_REASON = "token expired: refresh it and reconnect"
AUTH_TIMEOUT_REASON = "authentication timed out: send auth first"


class Connection:
    """The server side of one socket. ``run()`` returns when the socket is closed."""

    # Slots: one of these per socket, 20k sockets on a node.
    __slots__ = (
        "_bucket",
        "_close_request",
        "_closed",
        "_commands",
        "_finished",
        "_flush_due",
        "_guard",
        "_heard",
        "_last_id",
        "_limits",
        "_opened",
        "_outbox",
        "_pinged",
        "_principal",
        "_protocol",
        "_refused_in_a_row",
        "_stream",
        "_transport",
        "_writer",
        "_ws",
        "runtime",
        "watch_slot",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        runtime: ChatRuntime,
        guard: Guard,
        limits: ChatSettings,
        transport: asyncio.Transport,
        stream: AbstractStreamWriter,
        protocol: BaseProtocol,
        commands: CommandTable = COMMANDS,
    ) -> None:
        self.runtime = runtime
        self._ws = ws
        self._guard = guard
        self._limits = limits
        self._transport = transport
        self._stream = stream
        """aiohttp's writer of this socket: its ``drain()`` waits while the transport is full."""
        self._protocol = protocol
        self._commands = commands
        self._principal: Principal | None = None
        self._outbox: list[bytes] = []
        """Whole frames not yet handed to the transport, in order."""
        self._flush_due = False
        self._writer: asyncio.Task[None] | None = None
        """Only while the transport pushes back, or while closing."""
        self._close_request: tuple[CloseCode, str] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._finished = False
        self._bucket: TokenBucket | None = None
        """Made at the first request: an idle socket never needs one."""
        self._refused_in_a_row = 0
        self._last_id = 0
        self._opened = time.monotonic()
        self._heard = 0.0
        """Loop time of the peer's last frame (any: a ping or pong counts)."""
        self._pinged = 0.0
        """Loop time of the ping we wait on an answer to; 0.0 if none."""
        self.watch_slot: int | None = None
        """Where the node's ``Watch`` keeps this socket; only the watch sets it."""

    # --- what handlers and the registry use --------------------------------------------------
    @property
    def principal(self) -> Principal:
        """Who this connection speaks for; only after the auth phase."""
        if self._principal is None:
            raise RuntimeError("connection is not authenticated")
        return self._principal

    @property
    def close_request(self) -> tuple[CloseCode, str] | None:
        """The code and reason the socket is being (or was) closed with, if any."""
        return self._close_request

    def send(self, frame: Frame) -> bool:
        return self.enqueue_frame(text_frame(encode(frame)))

    def enqueue(self, text: str) -> bool:
        """Queue already-encoded text; False if it was dropped (closing, or queue full)."""
        return self.enqueue_frame(text_frame(text))

    def enqueue_frame(self, frame: bytes) -> bool:
        """Queue a whole WebSocket frame (``wire.text_frame``); False if it was dropped."""
        if self._close_request is not None:
            return False
        outbox = self._outbox
        if len(outbox) >= self._limits.send_queue_size:
            log.warning("websocket client too slow", extra=self._log_fields())
            self.close(CloseCode.TOO_SLOW, TOO_SLOW_REASON, discard=True)
            return False
        outbox.append(frame)
        if not self._flush_due and self._writer is None:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def close(self, code: CloseCode, reason: str, *, discard: bool = False) -> None:
        """Close the socket after the queued frames (none if ``discard``).

        The first request wins: its code is the one the client sees.
        """
        if discard:
            self._outbox.clear()
        if self._close_request is None:
            self._close_request = (code, reason)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_out(), name="sealchat-ws-writer")

    async def wait_closed(self) -> None:
        if self._finished:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Auth phase, then requests until the socket closes (or the watch closes it).

        The read loop is inline rather than in helpers: every coroutine in this chain is a
        frame kept for the socket's whole life. A request in flight when the token expires
        finishes (its result is dropped with the closing socket).
        """
        registry = self.runtime.gateway
        watch = registry.watch
        loop = asyncio.get_running_loop()
        try:
            watch.at(self, loop.time() + self._limits.auth_deadline_seconds)
            if await self._sign_in(registry):
                self._heard = loop.time()
                watch.at(self, self._heard)  # look() then says when next (heartbeat, expiry)
                ws = self._ws
                while self._close_request is None:  # else the writer is closing it
                    msg = await ws.receive()
                    self._heard = loop.time()
                    kind = msg.type
                    if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                        if self._close_request is not None:
                            break
                        await self._handle(msg.data)
                    elif kind is WSMsgType.PING:
                        self.enqueue_frame(pong_frame(msg.data))
                    elif kind is not WSMsgType.PONG:
                        break  # closed, or an error frame: aiohttp has closed it (1009)
        finally:
            watch.forget(self)
            try:
                if self._principal is not None:
                    await registry.remove(self)  # a no-op if it was never added
            finally:
                await self._finish()

    async def _finish(self) -> None:
        self.close(CloseCode.NORMAL, "")
        try:
            if self._writer is not None:
                await self._writer  # cancelled with us if the handler itself is cancelled
        finally:
            self._finished = True
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)
            if self._principal is not None:
                code = self._close_request[0] if self._close_request else None
                log.info("websocket closed", extra={**self._log_fields(), "code": code})
                self._event(
                    "disconnect",
                    code=None if code is None else int(code),
                    seconds=round(time.monotonic() - self._opened),
                )

    def look(self, now: float) -> float | None:
        """What the node's watch calls (``watch.py``) at the time this socket asked for:
        close it if it has not authenticated in time or its token has expired, ping it after
        a heartbeat of silence, drop it if the ping went unanswered. When to look again."""
        if self._close_request is not None:
            return None
        principal = self._principal
        if principal is None:  # looked at only while the first frame is awaited
            self.close(CloseCode.AUTH_FAILED, AUTH_TIMEOUT_REASON)
            return None
        left = principal.expires + LEEWAY_SECONDS - time.time()
        if left <= 0:  # a socket lives no longer than its token, plus every service's leeway
            self.close(CloseCode.AUTH_FAILED, EXPIRED_REASON)
            return None
        beat = self._limits.heartbeat_seconds
        if self._pinged:
            answer_by = self._pinged + beat / 2
            if self._heard < self._pinged:  # not a word since the ping
                if now >= answer_by:
                    self._drop_silent()
                    return None
                return min(answer_by, now + left)
            self._pinged = 0.0
        if now >= self._heard + beat:
            self.enqueue_frame(PING_FRAME)
            self._pinged = now
            return min(now + beat / 2, now + left)
        return min(self._heard + beat, now + left)

    def _drop_silent(self) -> None:
        """The peer answered no ping: no close handshake is possible, so cut the socket
        (aiohttp's own heartbeat did the same, 1006); the read loop ends with it."""
        log.info("websocket peer silent: dropped", extra=self._log_fields())
        self._close_request = (CloseCode.ABNORMAL, "")
        self._outbox.clear()
        self._transport.abort()

    async def _sign_in(self, registry: Registry) -> bool:
        """The first frame, then (at the gate) the token and device checks and the
        registry's hooks. False if the socket is to close."""
        frame = await self._first_frame()
        if frame is None:
            return False
        async with registry.signing_in:
            if self._close_request is not None or self._transport.is_closing():
                return False  # gone, or closed by shutdown, while it waited its turn
            if not await self._authenticate(frame) or self._close_request is not None:
                return False
            await registry.add(self)
        return True

    async def _first_frame(self) -> Auth | None:
        """The ``auth`` frame, or None (the socket is closing or being closed)."""
        while True:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.PING:
                self.enqueue_frame(pong_frame(msg.data))
            elif msg.type is not WSMsgType.PONG:
                break
        self.runtime.gateway.watch.forget(self)  # the auth deadline is met
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY) or self._close_request is not None:
            return None  # closed, refused by aiohttp (too big: closed with 1009), or timed out
        frame = decode_request(msg.data, max_bytes=self._limits.max_frame_bytes)
        if not isinstance(frame, Auth):
            self.send(
                Result.fail(
                    frame_id(frame), ErrorCode.UNAUTHORIZED, "the first frame must be auth {token}"
                )
            )
            self.close(CloseCode.AUTH_FAILED, "authenticate first")
            return None
        return frame

    async def _authenticate(self, frame: Auth) -> bool:
        try:
            principal = await authenticate(frame, self._guard, self.runtime.stores.engine)
        except ApiError as err:
            log.info("websocket auth refused", extra={"code": err.code.value})
            self.send(Result.fail(frame.id, err.code, err.message))
            self.close(CloseCode.AUTH_FAILED, "authentication failed")
            return False
        except Exception as exc:
            level = logging.WARNING if store_unavailable(exc) else logging.ERROR
            log.log(level, "websocket auth could not run", extra={"error": type(exc).__name__})
            self.send(Result.fail(frame.id, ErrorCode.UNAVAILABLE, "cannot check logins now"))
            self.close(CloseCode.INTERNAL_ERROR, "cannot check logins now: retry shortly")
            return False
        self._principal = principal
        self._last_id = frame.id
        self.send(Result.ok(frame.id, AuthOk(user=principal.user, device=principal.device)))
        log.info("websocket open", extra=self._log_fields())
        self._event("connect")
        return True

    async def _handle(self, data: str | bytes) -> None:
        frame = decode_request(data, max_bytes=self._limits.max_frame_bytes)
        bucket = self._bucket
        if bucket is None:  # full when made, as it would be by now had it been made at connect
            bucket = self._bucket = TokenBucket(self._limits.rate_per_second, self._limits.burst)
        if not bucket.take():
            self._refused_in_a_row += 1
            if self._refused_in_a_row >= self._limits.burst:
                log.warning("websocket rate limit exceeded", extra=self._log_fields())
                self.close(CloseCode.RATE_LIMITED, "rate limit exceeded: slow down", discard=True)
            else:
                self.send(Result.fail(frame_id(frame), ErrorCode.RATE_LIMITED, "slow down"))
            return
        self._refused_in_a_row = 0
        if isinstance(frame, Request):
            if frame.id <= self._last_id:
                self.send(
                    Result.fail(frame.id, ErrorCode.BAD_FRAME, "id: must increase with each frame")
                )
                return
            self._last_id = frame.id
        result = await self._commands.dispatch(self, frame)
        if isinstance(frame, Send):  # the log gets the size and outcome, never the body
            self._event(
                "send",
                room=frame.room,
                msg_id=frame.msg_id,
                size=len(frame.ciphertext),
                result="success" if result.success else "fail",
                **({"reason": str(result.error.code)} if result.error else {}),
            )
        self.send(result)

    # --- writing ---------------------------------------------------------------------------
    def _flush(self) -> None:
        """Hand everything queued to the transport in one write (called soon after a queue)."""
        self._flush_due = False
        if self._writer is not None or not self._outbox:
            return  # the writer task owns the outbox now
        if self._protocol.writing_paused:
            self._writer = asyncio.create_task(self._write_out(), name="sealchat-ws-writer")
            return
        self._write_now()

    def _write_now(self) -> None:
        frames, self._outbox = self._outbox, []
        if self._ws.closed or self._transport.is_closing():
            return  # the peer is gone or the socket is closing: nothing more can be written
        self._transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def _write_out(self) -> None:
        """Write the outbox as the transport drains, then either hand writing back to
        ``_flush`` or, once a close is requested, close the socket."""
        try:
            while True:
                if self._outbox:
                    if self._protocol.writing_paused:
                        async with asyncio.timeout(self._limits.send_timeout_seconds):
                            await self._stream.drain()
                    self._write_now()
                elif self._close_request is None:
                    self._writer = None  # caught up: queued frames are flushed directly again
                    return
                else:
                    break
        except TimeoutError:
            log.warning("websocket write stalled", extra=self._log_fields())
            self.close(CloseCode.TOO_SLOW, TOO_SLOW_REASON, discard=True)
        except ConnectionError:
            self._outbox.clear()  # the peer is gone; nothing more can be written
            if self._close_request is None:
                self._close_request = (CloseCode.NORMAL, "")
        await self._close_socket()

    async def _close_socket(self) -> None:
        code, reason = self._close_request or (CloseCode.NORMAL, "")
        try:
            # Writing the close frame can stall on a client that does not read: bound it.
            async with asyncio.timeout(self._limits.send_timeout_seconds):
                await self._ws.close(code=code, message=reason.encode())
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()
        except ConnectionError:
            pass

    def _event(self, category: str, **data: object) -> None:
        """An event record for the log service about this connection's user."""
        p = self.principal
        self.runtime.events.emit(category, p.user, device=p.device, **data)

    def _log_fields(self) -> dict[str, object]:
        p = self._principal
        return {} if p is None else {"user": p.user, "device": p.device}
