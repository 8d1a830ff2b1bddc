"""``GET /chat/ws``: upgrade, check the Origin, and hand the socket to a ``Connection``.

The token never travels in the URL (URLs end up in proxy and access logs): it is the first
frame. Browsers send ``Origin``; it must be one of ``server.allowed_origins``. Clients that
are not browsers send none and are let through — the token is what authenticates them.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web

from backend.chat.gateway.connection import Connection
from backend.chat.gateway.registry import SHUTDOWN_REASON, LiveSockets
from backend.common.errors import ApiError
from backend.common.middlewares import error_answer, holds_connection
from backend.common.typedefs import CHAT_RUNTIME, GUARD, SETTINGS
from backend.protocol.errors import CloseCode, ErrorCode

log = logging.getLogger("sealchat.gateway")

LIVE_SOCKETS: web.AppKey[LiveSockets] = web.AppKey("live_sockets", LiveSockets)


@holds_connection  # no middleware frame waits out the socket: errors are answered here
async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.config_dict[SETTINGS]
    ws = web.WebSocketResponse(
        autoping=False,  # pings and pongs reach the connection: its heartbeat (``look``)
        max_msg_size=settings.chat.max_frame_bytes,
        compress=False,  # compressing ciphertext gains nothing and invites memory blow-ups
    )
    try:
        if not ws.can_prepare(request).ok:
            raise ApiError(ErrorCode.INVALID, "this endpoint speaks WebSocket: connect with one")
        await ws.prepare(request)
    except Exception as exc:
        answer = error_answer(request, exc)
        if answer is None:
            raise
        return answer
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin not in settings.server.allowed_origins:
        log.info("websocket origin refused", extra={"origin": origin[:200]})
        await ws.close(code=CloseCode.BAD_ORIGIN, message=b"origin not allowed")
        return ws
    live = request.app[LIVE_SOCKETS]
    transport = request.transport
    if transport is None:
        return ws  # the client is already gone
    if live.closing:
        await ws.close(code=CloseCode.GOING_AWAY, message=SHUTDOWN_REASON.encode())
        return ws
    conn = Connection(
        ws,
        runtime=request.config_dict[CHAT_RUNTIME],
        guard=request.config_dict[GUARD],
        limits=settings.chat,
        transport=transport,
        stream=request.writer,
        protocol=request.protocol,
    )
    live.add(conn)
    try:
        await conn.run()
    except Exception:
        # After the upgrade no HTTP answer can follow; the connection has closed the socket.
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
    finally:
        live.discard(conn)
    return ws


async def _going_away(app: web.Application) -> None:
    # on_shutdown runs before the server waits for handlers: sockets must close here, or
    # shutdown would wait out its whole timeout and then cut them off without a close code.
    await app[LIVE_SOCKETS].close_all()


def install(app: web.Application) -> None:
    """Add the gateway to the chat sub-application."""
    app[LIVE_SOCKETS] = LiveSockets()
    app.router.add_get("/ws", websocket)
    app.on_shutdown.append(_going_away)
