"""Error codes shared by the server and the client.

Every error a client sees is ``{"error": {"code": CODE, "message": text}}``; the client maps
``code`` (never the message text) to behaviour.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


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
    # WebSocket frames (see docs/protocol.md, "WebSocket").
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    RATE_LIMITED = "rate_limited"
    NOT_MEMBER = "not_member"


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
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_MEMBER: 403,
}


class CloseCode(IntEnum):
    """Why the server closed a WebSocket; the client decides from the code whether to reconnect."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """The server is shutting down: reconnect (to another node) after a short pause."""
    ABNORMAL = 1006
    """Never sent (RFC 6455 §7.4.1): the server dropped the socket without a close frame,
    because the peer stopped answering pings. Recorded in the server's disconnect event; a
    client sees its own 1006 and reconnects."""
    TOO_BIG = 1009
    """A frame exceeded the size limit: do not resend it."""
    INTERNAL_ERROR = 1011
    """The server could not check the login (a store is down): reconnect with backoff."""
    AUTH_FAILED = 4001
    """No valid ``auth`` frame in time: refresh the token or log in, then reconnect."""
    BAD_ORIGIN = 4003
    """The browser ``Origin`` is not allowed: a configuration problem, do not retry."""
    TOO_SLOW = 4008
    """The client did not read fast enough: reconnect and catch up from history."""
    RATE_LIMITED = 4009
    """Too many frames too fast: reconnect after a pause and send more slowly."""
