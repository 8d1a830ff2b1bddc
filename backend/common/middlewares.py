"""Request ids, and one place where every failure becomes a JSON error body."""

from __future__ import annotations

import logging
import re
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from backend.common.errors import ApiError
from backend.common.logs import request_id_var
from backend.protocol.errors import ErrorCode
from backend.stores.errors import store_unavailable

log = logging.getLogger("sealchat.http")

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


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the caller's request id when it is sane (the load balancer sets one), else make one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
    token = request_id_var.set(rid)
    try:
        response = await handler(request)
        response.headers[REQUEST_ID_HEADER] = rid
        return response
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    finally:
        request_id_var.reset(token)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map ApiError and aiohttp's HTTP errors to JSON; never send a stack trace to a client."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.INVALID)
        response = error_response(ApiError(code, _http_message(code, request, exc)))
        response.set_status(exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception as exc:
        if store_unavailable(exc):
            log.warning(
                "store unreachable",
                extra={"path": request.path, "error": type(exc).__name__},
            )
            return error_response(
                ApiError(
                    ErrorCode.UNAVAILABLE,
                    "the server cannot reach one of its stores right now: try again shortly",
                    headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
                )
            )
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(
            ApiError(
                ErrorCode.INTERNAL,
                "internal error; quote the X-Request-ID header when reporting it",
            )
        )
