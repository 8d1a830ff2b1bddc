"""The WebSocket to ``/chat/ws``: auth first, requests matched to results, reconnects.

One task owns the socket and reads it; requests wait on futures keyed by the request id; every
other frame goes to ``on_event`` (synchronously: it must only hand the frame on). After a
drop the connection retries with exponential backoff and jitter; a 4001 close (token expired
or refused) refreshes the token first. Requests made while offline wait for the next socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from backend.protocol.codec import BadFrame, UnknownFrame, decode_event, encode
from backend.protocol.errors import CloseCode, ErrorCode
from backend.protocol.frames import CLIENT_FRAMES, Frame, Result
from tui.client.backoff import Backoff
from tui.client.errors import (
    ApiError,
    ClientClosed,
    ConnectionLost,
    NotLoggedIn,
    ServerUnreachable,
)
from tui.client.tokens import TokenKeeper

log = logging.getLogger("sealchat.client")

#: Seconds a request may wait for its result on an open socket.
REQUEST_TIMEOUT = 60.0
#: Close codes after which reconnecting cannot help.
FATAL_CLOSES = {CloseCode.BAD_ORIGIN}

StateCallback = Callable[[str, str, float | None], None]
"""``(state, detail, retry_in)``: connecting, online, offline, logged_out, closed."""


class Connection:
    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        keeper: TokenKeeper,
        *,
        device: str | None,
        on_event: Callable[[Frame], None],
        on_open: Callable[[], None],
        on_state: StateCallback,
        backoff: Backoff | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/ws"
        self._session = session
        self._keeper = keeper
        self._device = device
        self._on_event = on_event
        self._on_open = on_open
        self._on_state = on_state
        self._backoff = backoff or Backoff()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 1
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._online = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.user: str | None = None
        self.fatal: str | None = None
        """Why the connection gave up for good (logged out, origin refused)."""
        self.connects = 0
        self._last_token: str | None = None

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sealchat-client-ws")

    async def close(self) -> None:
        self._stopped.set()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_waiting(ClientClosed())

    async def wait_online(self, within: float | None = None) -> None:
        async with asyncio.timeout(within):
            while not self._online.is_set():
                if self.fatal is not None:
                    raise NotLoggedIn(self.fatal)
                if self._stopped.is_set():
                    raise ClientClosed()
                waiter = asyncio.ensure_future(self._online.wait())
                stopper = asyncio.ensure_future(self._stopped.wait())
                try:
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    stopper.cancel()

    async def request(
        self, type_: str, *, wait: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send one request on the current socket and return its ``result``.

        Waits up to ``wait`` seconds for a socket when offline. Raises ``ApiError`` for an
        error result and ``ConnectionLost`` when the socket drops first (the request may or
        may not have run: resend idempotent ones, like a ``send`` with the same ``msg_id``).
        """
        await self.wait_online(wait)
        model = CLIENT_FRAMES.get(type_)
        if model is None:
            raise ValueError(f"no client frame {type_!r}")
        ws = self._ws
        assert ws is not None
        rid = self._next_id
        self._next_id += 1
        text = encode(model.model_validate({"id": rid, "type": type_, **fields}))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            await ws.send_str(text)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await fut
        except (ConnectionResetError, aiohttp.ClientConnectionError) as exc:
            raise ConnectionLost() from exc
        finally:
            self._waiting.pop(rid, None)

    # --- the socket's life -------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopped.is_set():
            self._on_state("connecting", "", None)
            close_code: int | None = None
            detail = ""
            try:
                close_code = await self._session_once()
                detail = f"closed by the server ({close_code})"
            except NotLoggedIn as exc:
                self.fatal = exc.message
                self._on_state("logged_out", exc.message, None)
                return
            except ApiError as exc:
                if exc.code == ErrorCode.NOT_FOUND:
                    self.fatal = f"{exc.message}: log in again to register this device"
                    self._on_state("logged_out", self.fatal, None)
                    return
                detail = exc.message
                close_code = CloseCode.AUTH_FAILED if exc.code in _AUTH_CODES else None
            except (aiohttp.ClientError, OSError, TimeoutError, ServerUnreachable) as exc:
                detail = f"cannot reach the server ({type(exc).__name__})"
            finally:
                self._online.clear()
                self._ws = None
                self._fail_waiting(ConnectionLost())
            if self._stopped.is_set():
                break
            if close_code in FATAL_CLOSES:
                self.fatal = f"the server refused this client ({close_code}): check --server"
                self._on_state("closed", self.fatal, None)
                return
            if close_code == CloseCode.AUTH_FAILED:
                try:
                    await self._keeper.refresh(self._last_token)
                except NotLoggedIn as exc:
                    self.fatal = exc.message
                    self._on_state("logged_out", exc.message, None)
                    return
                except (
                    ApiError,
                    ServerUnreachable,
                    aiohttp.ClientError,
                    OSError,
                    TimeoutError,
                ) as exc:
                    log.info("token refresh failed", extra={"error": type(exc).__name__})
            delay = self._backoff.next_delay()
            self._on_state("offline", detail, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopped.wait()
        self._on_state("closed", "", None)

    async def _session_once(self) -> int | None:
        """One socket from connect to close; the close code (None: no close frame)."""
        token = await self._keeper.access()
        self._last_token = token
        async with self._session.ws_connect(self._url, heartbeat=25.0, max_msg_size=0) as ws:
            self._ws = ws
            self._next_id = 2
            auth: dict[str, Any] = {"id": 1, "type": "auth", "token": token}
            if self._device is not None:
                auth["device"] = self._device
            await ws.send_json(auth)
            first = await ws.receive(timeout=30)
            if first.type is not aiohttp.WSMsgType.TEXT:
                return ws.close_code
            reply = decode_event(first.data)
            if not isinstance(reply, Result):
                return ws.close_code
            if not reply.success:
                assert reply.error is not None
                raise ApiError(str(reply.error.code), reply.error.message)
            self.user = (reply.result or {}).get("user")
            self.connects += 1
            self._backoff.reset()
            self._online.set()
            self._on_state("online", "", None)
            self._on_open()
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(msg.data)
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
            return ws.close_code

    def _dispatch(self, data: str) -> None:
        frame = decode_event(data)
        if isinstance(frame, BadFrame | UnknownFrame):
            log.warning("unreadable frame from the server", extra={"problem": str(frame)})
            return
        if isinstance(frame, Result):
            fut = self._waiting.get(frame.id)
            if fut is None or fut.done():
                return
            if frame.success:
                fut.set_result(frame.result or {})
            else:
                assert frame.error is not None
                fut.set_exception(ApiError(str(frame.error.code), frame.error.message))
            return
        self._on_event(frame)

    def _fail_waiting(self, exc: Exception) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(exc)
        self._waiting.clear()


_AUTH_CODES = {ErrorCode.TOKEN_EXPIRED, ErrorCode.UNAUTHORIZED}
