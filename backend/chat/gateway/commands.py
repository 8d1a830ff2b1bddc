"""Commands: one handler per request type, registered with its frame model by a decorator,
and one dispatcher that turns whatever happens into exactly one ``result`` frame.

A handler gets the connection and the validated frame and returns the result payload (a
model or a dict). It raises ``ApiError`` for a failure the client should see; anything else
becomes ``internal`` and is logged by type and place only, never with the frame's contents.
A request type without a handler here is answered ``unknown_type``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from backend.common.errors import ApiError
from backend.protocol.codec import BadFrame, Decoded, UnknownFrame
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import CLIENT_FRAMES, Auth, Ping, Request, Result, frame_type
from backend.stores.errors import store_unavailable

if TYPE_CHECKING:
    from backend.chat.gateway.connection import Connection

log = logging.getLogger("sealchat.gateway")

R = TypeVar("R", bound=Request)
Reply = BaseModel | Mapping[str, Any] | None
Handler = Callable[["Connection", R], Awaitable[Reply]]


class CommandTable:
    """Request ``type`` → handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler[Any]] = {}

    def register(self, model: type[R]) -> Callable[[Handler[R]], Handler[R]]:
        """``@COMMANDS.register(Send)``: handle ``send`` frames, validated as ``Send``."""
        name = frame_type(model)
        if CLIENT_FRAMES.get(name) is not model:
            raise ValueError(f"{model.__name__} is not the registered client frame {name!r}")

        def decorate(handler: Handler[R]) -> Handler[R]:
            if name in self._handlers:
                raise ValueError(f"a handler for {name!r} is already registered")
            self._handlers[name] = handler
            return handler

        return decorate

    def handles(self, name: str) -> bool:
        return name in self._handlers

    async def dispatch(self, conn: Connection, frame: Decoded) -> Result:
        """The one ``result`` that answers ``frame``; never raises (except cancellation)."""
        if isinstance(frame, BadFrame):
            return Result.fail(frame.id, ErrorCode.BAD_FRAME, frame.reason)
        if isinstance(frame, UnknownFrame) or not isinstance(frame, Request):
            return Result.fail(frame_id(frame), ErrorCode.UNKNOWN_TYPE, _UNKNOWN)
        handler = self._handlers.get(frame.type)
        if handler is None:
            return Result.fail(frame.id, ErrorCode.UNKNOWN_TYPE, _UNKNOWN)
        try:
            reply = await handler(conn, frame)
        except ApiError as err:
            return Result.fail(frame.id, err.code, err.message)
        except Exception as exc:
            return Result.fail(frame.id, *_unexpected(frame.type, exc))
        return Result.ok(frame.id, dict(reply) if isinstance(reply, Mapping) else reply)


_UNKNOWN = "this server does not answer that frame type (see docs/protocol.md)"


def frame_id(frame: Decoded) -> int | None:
    return frame.id if isinstance(frame, Request | BadFrame | UnknownFrame) else None


def _unexpected(frame_type: str, exc: Exception) -> tuple[ErrorCode, str]:
    """Log a failed command without its contents; what the client is told."""
    if store_unavailable(exc):
        log.warning(
            "store unreachable", extra={"frame_type": frame_type, "error": type(exc).__name__}
        )
        return ErrorCode.UNAVAILABLE, "the server cannot reach a store right now: try again"
    # The exception's message may quote the frame, so only its type and the stack are logged.
    log.error(
        "command failed",
        extra={
            "frame_type": frame_type,
            "error": type(exc).__name__,
            "stack": "".join(traceback.format_tb(exc.__traceback__)),
        },
    )
    return ErrorCode.INTERNAL, "internal error: try again, and report it if it keeps happening"


COMMANDS = CommandTable()
command = COMMANDS.register


@command(Ping)
async def ping(conn: Connection, frame: Ping) -> Reply:
    """Application-level liveness (the socket's own ping is the heartbeat)."""
    return {}


@command(Auth)
async def auth_again(conn: Connection, frame: Auth) -> Reply:
    """``auth`` is only the first frame; a connection never changes who it speaks for."""
    raise ApiError(
        ErrorCode.INVALID, "already authenticated: open a new connection to switch account"
    )
