"""Every WebSocket frame, as a pydantic model registered under its ``type``.

Requests (client → server) carry an ``id`` the server echoes in its ``result``; events
(server → client) carry none. A frame type may exist in both directions with different
shapes (``typing``, ``read``), so each direction has its own table.

Requests are strict and refuse unknown fields (a typo is an error, not silently ignored);
events ignore unknown fields, so an older client keeps working against a newer server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from backend.protocol.errors import ErrorCode

#: JavaScript-safe integers: a browser client can hold every id and seq exactly.
MAX_SAFE_INT = 2**53 - 1
#: Largest ciphertext accepted in one frame (the intake also caps its UTF-8 size).
MAX_CIPHERTEXT = 60_000

UserId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{3,32}$")]
DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,32}$")]
RoomId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@-]{1,64}$")]
MsgId = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-fA-F]{32}|[A-Za-z0-9_-]{22})$")]
"""Client-made, 128 random bits: 32 hex digits or 22 characters of unpadded base64url."""
Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,31}$")]
#: Disappearing messages: from 5 seconds to a year.
MIN_TTL, MAX_TTL = 5, 365 * 86400
EXPIRED_KIND = "expired"
"""The ``kind`` of a disappearing message after its time: the ciphertext is gone (empty)."""
Ciphertext = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CIPHERTEXT)]
"""Opaque to the server: stored and forwarded, never parsed or logged."""
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,4096}$")]
RequestId = Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
Seq = Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
Reason = Annotated[str, StringConstraints(max_length=256)]


class Frame(BaseModel):
    """Any frame; ``type`` is its registry key."""

    model_config = ConfigDict(frozen=True)
    type: str


class Request(Frame):
    """A client → server frame: answered by exactly one ``result`` with the same ``id``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    id: RequestId


class Event(Frame):
    """A server → client frame."""

    model_config = ConfigDict(frozen=True, extra="ignore")


F = TypeVar("F", bound=Frame)


class FrameTable:
    """``type`` → model for one direction; filled by the ``register`` decorator."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self._models: dict[str, type[Frame]] = {}

    def register(self, model: type[F]) -> type[F]:
        name = frame_type(model)
        if name in self._models:
            raise ValueError(f"{self.direction} frame type {name!r} registered twice")
        self._models[name] = model
        return model

    def get(self, name: str) -> type[Frame] | None:
        return self._models.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def items(self) -> list[tuple[str, type[Frame]]]:
        return list(self._models.items())


def frame_type(model: type[Frame]) -> str:
    """The ``type`` a model is registered under: the default of its ``type`` field."""
    default = model.model_fields["type"].default
    if not isinstance(default, str):
        raise TypeError(f"{model.__name__}.type needs a Literal default")
    return default


CLIENT_FRAMES = FrameTable("client")
SERVER_FRAMES = FrameTable("server")
client_frame: Callable[[type[F]], type[F]] = CLIENT_FRAMES.register
server_frame: Callable[[type[F]], type[F]] = SERVER_FRAMES.register


# --- client → server ------------------------------------------------------------------------


@client_frame
class Auth(Request):
    """The first frame of every connection; never a token in the URL."""

    type: Literal["auth"] = "auth"
    token: Token
    device: DeviceId | None = None
    """The device this connection speaks for (registered at ``POST /auth/devices``); it
    receives that device's ``to_device`` messages. Absent: a device-less session (bots)."""


@client_frame
class Ping(Request):
    type: Literal["ping"] = "ping"


@client_frame
class Send(Request):
    """Publish one encrypted room message; acked only once it is durable."""

    type: Literal["send"] = "send"
    msg_id: MsgId
    room: RoomId
    ciphertext: Ciphertext
    kind: Kind = "m"
    ttl: Annotated[int, Field(ge=MIN_TTL, le=MAX_TTL)] | None = None
    """Seconds until the server deletes the ciphertext (disappearing messages); the
    encrypted content states the same timer, which every client enforces itself."""

    @model_validator(mode="after")
    def _not_expired(self) -> Send:
        if self.kind == EXPIRED_KIND:
            raise ValueError("kind 'expired' is the server's mark of a deleted message")
        return self


@client_frame
class Sync(Request):
    """The latest seq of each room (all of the caller's rooms when ``rooms`` is absent)."""

    type: Literal["sync"] = "sync"
    rooms: Annotated[list[RoomId], Field(max_length=1000)] | None = None


@client_frame
class History(Request):
    """A page of one room: after ``after`` (catch-up), before ``before`` or the newest."""

    type: Literal["history"] = "history"
    room: RoomId
    after: Annotated[int, Field(ge=0, le=MAX_SAFE_INT)] | None = None
    before: Seq | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100

    @model_validator(mode="after")
    def _one_direction(self) -> History:
        if self.after is not None and self.before is not None:
            raise ValueError("give after or before, not both")
        return self


@client_frame
class SendToDevice(Request):
    """An Olm message (key sharing, verification) for one device of one user."""

    type: Literal["send_to_device"] = "send_to_device"
    user: UserId
    device: DeviceId
    msg_id: MsgId
    ciphertext: Ciphertext


@client_frame
class AckToDevice(Request):
    """The device stored these to-device messages: the server may delete them."""

    type: Literal["ack_to_device"] = "ack_to_device"
    ids: Annotated[list[MsgId], Field(min_length=1, max_length=100)]


@client_frame
class Typing(Request):
    type: Literal["typing"] = "typing"
    room: RoomId
    active: bool


@client_frame
class Read(Request):
    """The caller has read ``room`` up to ``seq``."""

    type: Literal["read"] = "read"
    room: RoomId
    seq: Seq


# --- server → client ------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: ErrorCode | str
    """An ``ErrorCode``; a code this client does not know yet stays a plain string."""
    message: str


@server_frame
class Result(Event):
    """The answer to request ``id``; ``id`` 0 answers a frame whose id could not be read."""

    type: Literal["result"] = "result"
    id: Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
    success: bool
    result: dict[str, Any] | None = None
    error: ErrorDetail | None = None

    @model_validator(mode="after")
    def _result_or_error(self) -> Result:
        if self.success != (self.error is None):
            raise ValueError("a result has an error exactly when success is false")
        return self

    @classmethod
    def ok(cls, id: int, result: BaseModel | dict[str, Any] | None = None) -> Result:
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json", exclude_none=True)
        return cls(id=id, success=True, result=result if result is not None else {})

    @classmethod
    def fail(cls, id: int | None, code: ErrorCode, message: str) -> Result:
        return cls(id=id or 0, success=False, error=ErrorDetail(code=code, message=message))


class AuthOk(BaseModel):
    """The ``result`` of a successful ``auth``."""

    user: UserId
    device: DeviceId | None = None


@server_frame
class Message(Event):
    """A committed room message: already in history under ``seq``."""

    type: Literal["message"] = "message"
    room: RoomId
    seq: Seq
    msg_id: MsgId
    sender: UserId
    device: DeviceId
    ts: AwareDatetime
    kind: Kind = "m"
    ciphertext: Annotated[str, StringConstraints(max_length=MAX_CIPHERTEXT)]
    """Empty exactly when ``kind`` is ``expired`` (a disappearing message whose time passed)."""
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _empty_only_when_expired(self) -> Message:
        if (self.ciphertext == "") != (self.kind == EXPIRED_KIND):
            raise ValueError("ciphertext is empty exactly when kind is expired")
        return self


@server_frame
class ToDevice(Event):
    """A queued to-device message; it stays queued until the device sends ``ack_to_device``."""

    type: Literal["to_device"] = "to_device"
    id: MsgId
    sender: UserId
    sender_device: DeviceId
    ts: AwareDatetime
    ciphertext: Ciphertext


MemberAction = Literal["create", "invite", "join", "leave", "kick", "delete", "role"]
Role = Literal["admin", "member"]
LogSeq = Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
"""Position in the room's signed membership log (``GET /chat/rooms/{id}/log``)."""


@server_frame
class MemberEvent(Event):
    """The membership of a room the client is in changed: ``actor`` did ``action`` to ``user``."""

    type: Literal["member_event"] = "member_event"
    room: RoomId
    action: MemberAction
    actor: UserId
    user: UserId | None = None
    member_count: Annotated[int, Field(ge=0)]
    log_seq: LogSeq
    role: Role | None = None


@server_frame
class RoomInvite(Event):
    """The client was invited to a room (accept with ``POST /chat/rooms/{id}/join``)."""

    type: Literal["room_invite"] = "room_invite"
    room: RoomId
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    by: UserId
    log_seq: LogSeq | None = None


@server_frame
class InviteEvent(Event):
    """Something happened to a pending invite (``user`` declined it)."""

    type: Literal["invite_event"] = "invite_event"
    room: RoomId
    action: Literal["decline"]
    user: UserId


@server_frame
class RoomDeleted(Event):
    type: Literal["room_deleted"] = "room_deleted"
    room: RoomId
    by: UserId | None = None
    log_seq: LogSeq | None = None


@server_frame
class FriendEvent(Event):
    """``from`` did ``action`` towards ``to``; both sides get the same event."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    type: Literal["friend_event"] = "friend_event"
    action: Literal["request", "accept", "decline", "cancel", "remove", "block", "unblock"]
    from_: UserId = Field(alias="from")
    to: UserId


@server_frame
class Presence(Event):
    type: Literal["presence"] = "presence"
    user: UserId
    online: bool


@server_frame
class TypingEvent(Event):
    type: Literal["typing"] = "typing"
    room: RoomId
    user: UserId
    active: bool


@server_frame
class ReadEvent(Event):
    type: Literal["read"] = "read"
    room: RoomId
    user: UserId
    seq: Seq


@server_frame
class LogSigned(Event):
    """Entries ``seqs`` of the room's membership log were signed: verify them again."""

    type: Literal["log_signed"] = "log_signed"
    room: RoomId
    seqs: Annotated[list[LogSeq], Field(min_length=1, max_length=100)]


@server_frame
class Resync(Event):
    """Live delivery missed something: fetch history ``after`` the last seq of each room."""

    type: Literal["resync"] = "resync"
    reason: Reason
