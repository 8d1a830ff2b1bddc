"""Text ↔ frames. Decoding never raises: whatever arrives becomes a frame or a value that
says what was wrong with it, so one bad frame cannot kill a receive loop.

Encoding happens once per frame: the same text can then be written to every socket that
should see it. The output is pure ASCII JSON, so any string (even a lone surrogate that a
JSON escape can produce) can always be sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from backend.protocol.frames import (
    CLIENT_FRAMES,
    MAX_SAFE_INT,
    SERVER_FRAMES,
    Frame,
    FrameTable,
)

#: Default size limit of one frame (the server's is the ``chat.max_frame_bytes`` setting).
MAX_FRAME_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Not a valid frame. ``reason`` names the problem, never the offending value."""

    reason: str
    id: int | None = None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """Well-formed, but of a ``type`` this side does not know."""

    type: str
    id: int | None = None


Decoded = Frame | BadFrame | UnknownFrame


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _read_id(data: dict[str, Any]) -> int | None:
    value = data.get("id")
    if type(value) is int and 0 <= value <= MAX_SAFE_INT:
        return value
    return None


def _describe(exc: ValidationError) -> str:
    """The first problem, naming the field but not echoing its value (it may be a token)."""
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "frame"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


def _utf8_size_over(text: str, limit: int) -> bool:
    if len(text) > limit:  # every character is at least one byte
        return True
    if len(text) * 4 <= limit:  # and at most four
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def decode(data: str | bytes, table: FrameTable, *, max_bytes: int = MAX_FRAME_BYTES) -> Decoded:
    """One frame from ``data``, or a ``BadFrame``/``UnknownFrame`` saying why not."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > max_bytes:
            return BadFrame(f"frame larger than {max_bytes} bytes")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return BadFrame("frame is not UTF-8")
    elif not isinstance(data, str):
        return BadFrame("frame is not text")
    elif _utf8_size_over(data, max_bytes):
        return BadFrame(f"frame larger than {max_bytes} bytes")
    try:
        raw = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        return BadFrame("frame is nested too deeply")
    except ValueError:  # JSONDecodeError, NaN, or an integer too long to convert
        return BadFrame("frame is not valid JSON")
    return from_json_value(raw, table)


def from_json_value(raw: Any, table: FrameTable) -> Decoded:
    """A frame from already-parsed JSON (a dict built in-process, or ``json.loads`` output)."""
    if not isinstance(raw, dict):
        return BadFrame("frame must be a JSON object")
    frame_id = _read_id(raw)
    name = raw.get("type")
    if not isinstance(name, str) or not name:
        return BadFrame("type: missing or not a string", id=frame_id)
    model = table.get(name)
    if model is None:
        return UnknownFrame(type=name[:64], id=frame_id)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        return BadFrame(_describe(exc), id=frame_id, type=name)
    except RecursionError:
        return BadFrame("frame is nested too deeply", id=frame_id, type=name)


def decode_request(data: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Decoded:
    """What the server reads: a client → server frame."""
    return decode(data, CLIENT_FRAMES, max_bytes=max_bytes)


def decode_event(data: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Decoded:
    """What the client reads: a server → client frame."""
    return decode(data, SERVER_FRAMES, max_bytes=max_bytes)


def encode(frame: Frame) -> str:
    """The wire text of ``frame``; absent optional fields are left out."""
    body = {k: v for k, v in frame.model_dump(mode="json", by_alias=True).items() if v is not None}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True)


def encode_flat(frame: Frame) -> str:
    """``encode(frame)`` for a frame without nested models, from pydantic's serializer (the
    fan-out's hot path): the same text whenever it is ASCII, else ``encode``'s own escaping."""
    try:
        text = frame.model_dump_json(exclude_none=True, by_alias=True)
    except ValueError:  # a lone surrogate: only encode's escaping can carry it
        return encode(frame)
    return text if text.isascii() else encode(frame)
