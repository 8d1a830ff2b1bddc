"""One WebSocket connection: an auth phase, then requests answered in order, and one writer.

- Auth phase: the first frame must be ``auth {token}`` within ``chat.auth_deadline_seconds``;
  anything else closes the socket with 4001. Nothing else is read or pushed before it.
- Requests are handled one at a time, in arrival order, each answered by one ``result``.
  A bad or unknown frame gets an error result; the loop goes on.
- Every outgoing frame (results and pushed events) goes through one bounded queue drained
  by one writer task, so writes never interleave and a producer never waits for a socket.
  A client that lets the queue fill, or stalls one write past ``chat.send_timeout_seconds``,
  is cut off with 4008 and catches up from history when it reconnects.
- A token bucket limits incoming frames; a client that keeps sending while refused is
  closed with 4009.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from backend.chat.gateway.auth_phase import Principal, authenticate
from backend.chat.gateway.commands import COMMANDS, CommandTable, frame_id
from backend.chat.gateway.ratelimit import TokenBucket
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

log = logging.getLogger("sealchat.gateway")

TOO_SLOW_REASON = "too slow: reconnect and catch up from history"
EXPIRED_REASON = "token expired: refresh it and reconnect"


class Connection:
    """The server side of one socket. ``run()`` returns when the socket is closed."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        runtime: ChatRuntime,
        guard: Guard,
        limits: ChatSettings,
        transport: asyncio.Transport | None = None,
        commands: CommandTable = COMMANDS,
    ) -> None:
        self.runtime = runtime
        self._ws = ws
        self._guard = guard
        self._limits = limits
        self._transport = transport
        self._commands = commands
        self._principal: Principal | None = None
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._close_request: tuple[CloseCode, str] | None = None
        self._bucket = TokenBucket(limits.rate_per_second, limits.burst)
        self._refused_in_a_row = 0
        self._last_id = 0
        self._opened = time.monotonic()

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
        return self.enqueue(encode(frame))

    def enqueue(self, text: str) -> bool:
        """Queue already-encoded text; False if it was dropped (closing, or queue full)."""
        if self._close_request is not None:
            return False
        if len(self._outbox) >= self._limits.send_queue_size:
            log.warning("websocket client too slow", extra=self._log_fields())
            self.close(CloseCode.TOO_SLOW, TOO_SLOW_REASON, discard=True)
            return False
        self._outbox.append(text)
        self._wake.set()
        return True

    def close(self, code: CloseCode, reason: str, *, discard: bool = False) -> None:
        """Ask the writer to close the socket after the queued frames (none if ``discard``).

        The first request wins: its code is the one the client sees.
        """
        if discard:
            self._outbox.clear()
        if self._close_request is None:
            self._close_request = (code, reason)
        self._wake.set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop(), name="sealchat-ws-writer")
        try:
            if await self._auth_phase() and self._close_request is None:
                registry = self.runtime.gateway
                try:
                    await registry.add(self)
                    await self._serve_until_expiry()
                finally:
                    await registry.remove(self)
        finally:
            self.close(CloseCode.NORMAL, "")
            try:
                await writer  # cancelled with us if the handler itself is cancelled
            finally:
                self._done.set()
                if self._principal is not None:
                    code = self._close_request[0] if self._close_request else None
                    log.info("websocket closed", extra={**self._log_fields(), "code": code})
                    self._event(
                        "disconnect",
                        code=None if code is None else int(code),
                        seconds=round(time.monotonic() - self._opened),
                    )

    async def _auth_phase(self) -> bool:
        try:
            async with asyncio.timeout(self._limits.auth_deadline_seconds):
                msg = await self._ws.receive()
        except TimeoutError:
            self.close(CloseCode.AUTH_FAILED, "authentication timed out: send auth first")
            return False
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return False  # closed, or refused by aiohttp (too big: already closed with 1009)
        frame = decode_request(msg.data, max_bytes=self._limits.max_frame_bytes)
        if not isinstance(frame, Auth):
            self.send(
                Result.fail(
                    frame_id(frame), ErrorCode.UNAUTHORIZED, "the first frame must be auth {token}"
                )
            )
            self.close(CloseCode.AUTH_FAILED, "authenticate first")
            return False
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

    async def _serve_until_expiry(self) -> None:
        """A socket lives no longer than the token it signed in with (plus the leeway every
        service grants): then the client refreshes its token, reconnects and catches up."""
        left = self.principal.expires + LEEWAY_SECONDS - time.time()
        try:
            async with asyncio.timeout(max(left, 0.0)):
                await self._serve()
        except TimeoutError:
            self.close(CloseCode.AUTH_FAILED, EXPIRED_REASON)

    async def _serve(self) -> None:
        async for msg in self._ws:
            if self._close_request is not None:
                break  # the writer is closing the socket; read no more
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self._handle(msg.data)
            else:
                break  # an error frame: aiohttp has closed the socket (e.g. 1009)

    async def _handle(self, data: str | bytes) -> None:
        frame = decode_request(data, max_bytes=self._limits.max_frame_bytes)
        if not self._bucket.take():
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

    # --- the one writer ------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        try:
            while True:
                if self._outbox:
                    text = self._outbox.popleft()
                    async with asyncio.timeout(self._limits.send_timeout_seconds):
                        await self._ws.send_str(text)
                elif self._close_request is not None:
                    break
                else:
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            log.warning("websocket write stalled", extra=self._log_fields())
            self.close(CloseCode.TOO_SLOW, TOO_SLOW_REASON, discard=True)
        except ConnectionError:
            self._outbox.clear()  # the peer is gone; nothing more can be written
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
