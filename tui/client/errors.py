"""What can go wrong talking to a sealchat server, as values a caller (UI or CLI) can act on.

Callers branch on ``code`` (an ``ErrorCode`` string from ``backend.protocol.errors``), never on
the message text; ``message`` is the server's sentence for a person, which says what to do next.
"""

from __future__ import annotations

from backend.protocol.errors import ErrorCode


class ClientError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The server refused a REST call or a WebSocket request."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"

    @property
    def session_over(self) -> bool:
        """The login is gone for good: only a new ``login`` helps."""
        return self.code in (ErrorCode.UNAUTHORIZED, ErrorCode.REFRESH_REUSED)


class NotLoggedIn(ClientError):
    """No session in this profile (or it ended): the user must log in."""

    def __init__(self, message: str = "not logged in: run `sealchat login` first") -> None:
        super().__init__(message)


class ServerUnreachable(ClientError):
    """The server did not answer at all (refused, timed out, DNS)."""


class ConnectionLost(ClientError):
    """The WebSocket dropped before a request was answered; it may or may not have run."""

    def __init__(self, message: str = "connection to the server was lost") -> None:
        super().__init__(message)


class ClientClosed(ClientError):
    """The client was closed while a call was waiting."""

    def __init__(self, message: str = "the client is closed") -> None:
        super().__init__(message)
