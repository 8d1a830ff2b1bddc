"""What the log query API takes and returns."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

MAX_LIMIT = 1000


class EventFilter(BaseModel):
    """``GET /log/events`` query parameters; every one is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str | None = Field(default=None, max_length=32, description="auth, chat, log …")
    category: str | None = Field(default=None, max_length=32, description="signin, send …")
    id: str | None = Field(default=None, max_length=128, description="the user or room")
    since: AwareDatetime | None = Field(
        default=None, description="an ISO 8601 time with a zone, e.g. 2026-11-22T04:00:00Z"
    )
    until: AwareDatetime | None = Field(
        default=None, description="an ISO 8601 time with a zone (exclusive)"
    )
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)

    @model_validator(mode="after")
    def _ordered(self) -> EventFilter:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since")
        return self


class EventOut(BaseModel):
    """One record, in the seed's format (``datetime`` UTC with ``Z``)."""

    event_id: str
    datetime: str
    server: str
    category: str
    id: str
    data: dict[str, Any]
    request_id: str | None = None


class EventsOut(BaseModel):
    events: list[EventOut]
    """Newest first."""


class Health(BaseModel):
    message: str
