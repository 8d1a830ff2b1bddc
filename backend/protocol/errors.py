"""Error codes shared by the server and the client.

Every error a client sees is ``{"error": {"code": CODE, "message": text}}``; the client maps
``code`` (never the message text) to behaviour.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    INVALID = "invalid"
    TOO_LARGE = "too_large"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (an error code)
    FORBIDDEN = "forbidden"
    BAD_CREDENTIALS = "bad_credentials"
    THROTTLED = "throttled"
    REFRESH_REUSED = "refresh_reused"
    BAD_SIGNATURE = "bad_signature"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


#: HTTP status that goes with each code at the REST edge.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.INVALID: 422,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.BAD_CREDENTIALS: 401,
    ErrorCode.THROTTLED: 429,
    ErrorCode.REFRESH_REUSED: 401,
    ErrorCode.BAD_SIGNATURE: 422,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}
