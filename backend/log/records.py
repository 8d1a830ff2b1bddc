"""Reading event records off the queue, strictly: what cannot be stored as is goes to the
dead-letter queue, never half into ``logdata``.

A record is the seed's ``{datetime, server, category, id, data}`` plus ``event_id`` (for
de-duplication) and ``request_id`` (``backend/common/events.py`` makes them). The consumer is
the last line of defence for the promise that the log never holds a password, a token or a
message body: a record whose data has a field named like one is refused whole.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from backend.common.events import MAX_BATCH_BYTES, MAX_BATCH_RECORDS
from backend.common.logs import SENSITIVE
from backend.stores.documents.port import EventRecord

MAX_RECORD_BYTES = 16 * 1024
"""Events are small facts; anything larger is a bug or an attack, not a log line."""
MAX_DEPTH = 3

_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_SUBJECT = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# Field-name fragments that never belong in the log, whatever their exact spelling.
_SENSITIVE_PARTS = ("passw", "token", "secret", "ciphertext", "body", "plaintext")


class MalformedEvent(ValueError):
    """The record cannot be stored; ``str()`` names the field, never its value."""


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return lowered in SENSITIVE or any(part in lowered for part in _SENSITIVE_PARTS)


def _check_data(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise MalformedEvent("data is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_sensitive(key):
                raise MalformedEvent("data carries a field that must never be logged")
            _check_data(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_data(item, depth + 1)


def _text(data: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = data.get(name)
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise MalformedEvent(f"{name} is missing or not valid")
    return value


def _when(raw: object) -> datetime:
    if not isinstance(raw, str) or len(raw) > 40:
        raise MalformedEvent("datetime is missing or not an ISO 8601 time")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise MalformedEvent("datetime is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise MalformedEvent("datetime has no time zone (UTC with Z expected)")
    return when.astimezone(UTC)


def parse_events(body: bytes) -> list[EventRecord]:
    """The records of one queue message: a JSON array of up to ``MAX_BATCH_RECORDS`` records
    (how ``EventPublisher`` sends them), or one record as an object. ``MalformedEvent`` if
    any of them is malformed: the message is refused whole."""
    if len(body) > MAX_BATCH_BYTES:
        raise MalformedEvent(f"batch is larger than {MAX_BATCH_BYTES} bytes")
    data = _json(body, "batch")
    if not isinstance(data, list):
        if len(body) > MAX_RECORD_BYTES:
            raise MalformedEvent(f"record is larger than {MAX_RECORD_BYTES} bytes")
        return [_record(data)]
    if not 1 <= len(data) <= MAX_BATCH_RECORDS:
        raise MalformedEvent(f"a batch holds 1 to {MAX_BATCH_RECORDS} records")
    if any(len(json.dumps(item)) > MAX_RECORD_BYTES for item in data):
        raise MalformedEvent(f"a record is larger than {MAX_RECORD_BYTES} bytes")
    return [_record(item) for item in data]


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedEvent(f"{what} is not JSON") from None


def _record(data: Any) -> EventRecord:
    if not isinstance(data, dict):
        raise MalformedEvent("record is not a JSON object")
    payload = data.get("data", {})
    if not isinstance(payload, dict):
        raise MalformedEvent("data is not an object")
    _check_data(payload)
    request_id = data.get("request_id")
    if request_id is not None:
        request_id = _text(data, "request_id", _REQUEST_ID)
    return EventRecord(
        event_id=_text(data, "event_id", _EVENT_ID),
        datetime=_when(data.get("datetime")),
        server=_text(data, "server", _NAME),
        category=_text(data, "category", _NAME),
        id=_text(data, "id", _SUBJECT),
        data=payload,
        request_id=request_id,
    )


def iso_z(when: datetime) -> str:
    """UTC, ISO 8601 with ``Z``: the seed's spelling of ``datetime``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
