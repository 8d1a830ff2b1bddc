"""Request ids, and one place where every failure becomes a JSON error body."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from backend.common.errors import ApiError
from backend.common.logs import request_id_var
from backend.protocol.errors import ErrorCode
from backend.stores.errors import store_unavailable

log = logging.getLogger("sealchat.http")

H = TypeVar("H", bound=Handler)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_HTTP_CODES = {
    400: ErrorCode.BAD_JSON,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.TOO_LARGE,
}
RETRY_AFTER_UNAVAILABLE = "5"


def _http_message(code: ErrorCode, request: web.Request, exc: web.HTTPException) -> str:
    if code is ErrorCode.NOT_FOUND:
        service = request.path.strip("/").split("/", 1)[0] or "auth"
        return f"no such endpoint: the API of /{service}/ is listed at /{service}/openapi.json"
    if code is ErrorCode.METHOD_NOT_ALLOWED:
        return "this endpoint does not take that method (see the Allow header)"
    if code is ErrorCode.TOO_LARGE:
        return f"request body too large: the limit is {request.client_max_size} bytes"
    return exc.reason


def error_response(err: ApiError) -> web.Response:
    return web.json_response(err.body(), status=err.status, headers=err.headers)


# Both middlewares are plain functions that return the next handler's awaitable: a coroutine
# middleware stays in the call chain for as long as the handler runs, and a WebSocket handler
# runs for the socket's whole life (a suspended frame per middleware per socket, 20k sockets
# on a chat node). Only the error mapping needs a frame, and only around handlers that answer
# with a response.

_HOLDS_CONNECTION = "_sealchat_holds_connection"


def holds_connection(handler: H) -> H:
    """Mark a handler that keeps its connection for as long as it runs (a WebSocket).

    ``error_middleware`` leaves it unwrapped, so it must answer its own errors until the
    upgrade (``error_answer``) and log its own after it, when no HTTP response can follow.
    """
    setattr(handler, _HOLDS_CONNECTION, True)
    return handler


@web.middleware
def request_id_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Take the caller's request id when it is sane (the load balancer sets one), else make one.

    Logs and event records of the request carry it, and ``echo_request_id`` puts it on the
    response. Nothing to reset afterwards: aiohttp runs every request in a task of its own,
    on a copy of the context.
    """
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id_var.set(given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex)
    return handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response (errors, WebSocket upgrades) names its request."""
    rid = request_id_var.get()
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid


@web.middleware
def error_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Map ApiError and aiohttp's HTTP errors to JSON; never send a stack trace to a client."""
    if getattr(request.match_info.handler, _HOLDS_CONNECTION, False):
        return handler(request)
    return _answering_errors(request, handler)


async def _answering_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        answer = error_answer(request, exc)
        if answer is None:
            raise
        return answer


def error_answer(request: web.Request, exc: Exception) -> web.Response | None:
    """The JSON response for a handler's exception; None for a redirect (to be re-raised)."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        code = _HTTP_CODES.get(exc.status, ErrorCode.INVALID)
        response = error_response(ApiError(code, _http_message(code, request, exc)))
        response.set_status(exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    if store_unavailable(exc):
        log.warning("store unreachable", extra={"path": request.path, "error": type(exc).__name__})
        return error_response(
            ApiError(
                ErrorCode.UNAVAILABLE,
                "the server cannot reach one of its stores right now: try again shortly",
                headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
            )
        )
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"path": request.path, "method": request.method},
    )
    return error_response(
        ApiError(
            ErrorCode.INTERNAL,
            "internal error; quote the X-Request-ID header when reporting it",
        )
    )
