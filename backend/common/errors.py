"""The one exception type a service raises for a client-facing error (no aiohttp here)."""

from __future__ import annotations

from collections.abc import Mapping

from backend.protocol.errors import HTTP_STATUS, ErrorCode


class ApiError(Exception):
    """An error the client should see: a stable ``code`` and a message that says what to do."""

    def __init__(
        self, code: ErrorCode, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code.value, "message": self.message}}
