"""Request and response bodies of the chat REST API (validated at the edge, shown in OpenAPI).

Only ids leave this service for other users: never an email or anything else an account holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from backend.auth.schemas import Strict, UserId
from backend.protocol.membership import Action, Role, RoomKind

ROOM_ID_PATTERN = r"^r_[A-Za-z0-9_-]{22}$"

# Names and topics are printed in terminals: control characters (escape sequences) are refused.
RoomName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="1 to 64 characters, no control characters"),
]
RoomTopic = Annotated[
    str,
    StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$"),
    Field(description="up to 256 characters, no control characters"),
]


class UserRef(Strict):
    user: UserId


class UserPath(Strict):
    """A user id taken from the path."""

    id: UserId


class Confirm(Strict):
    confirm: bool = False
    """Leaving or deleting a room cannot be undone: the client must ask, then send true."""


# --- friends ---------------------------------------------------------------------------------
class Friend(BaseModel):
    id: str
    since: datetime


class Pending(BaseModel):
    id: str
    at: datetime


class FriendList(BaseModel):
    friends: list[Friend]
    incoming: list[Pending]
    """Requests waiting for the caller's answer."""
    outgoing: list[Pending]
    """The caller's requests waiting for an answer."""


class FriendRequestOut(BaseModel):
    status: Literal["pending", "friends"]
    """``friends`` when the other user had already asked the caller."""


class BlockList(BaseModel):
    blocked: list[Pending]


# --- rooms -----------------------------------------------------------------------------------
class GroupIn(Strict):
    name: RoomName
    topic: RoomTopic = ""


class RoleIn(Strict):
    user: UserId
    role: Role


class MemberOut(BaseModel):
    id: str
    role: Role
    joined_at: datetime


class MemberList(BaseModel):
    members: list[MemberOut]
    member_count: int


class RoomSummary(BaseModel):
    id: str
    kind: RoomKind
    name: str | None = None
    topic: str | None = None
    role: Role
    """The caller's role in the room."""
    member_count: int
    read_seq: int = 0
    """The caller's read marker: unread = the room's latest seq (``sync``) - this."""


class RoomList(BaseModel):
    rooms: list[RoomSummary]


class RoomOut(BaseModel):
    id: str
    kind: RoomKind
    name: str | None = None
    topic: str | None = None
    creator: str | None = None
    """Absent when the creator deleted their account (the admins inherit the room)."""
    created_at: datetime
    members: list[MemberOut]
    member_count: int
    invited: list[str]
    log_seq: int
    """The last entry of the membership log."""


class InviteOut(BaseModel):
    room: str
    name: str | None = None
    by: str
    at: datetime


class InviteList(BaseModel):
    invites: list[InviteOut]


class LogQuery(Strict):
    after: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=500)


class LogEntryOut(BaseModel):
    seq: int
    action: Action
    actor: str
    target: str | None = None
    role: Role | None = None
    ts: datetime
    device_id: str | None = None
    signature: str | None = None


class MembershipLog(BaseModel):
    room: str
    entries: list[LogEntryOut]
    last_seq: int
    """The room's newest seq: keep asking with ``after`` until it is reached."""


DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,32}$")]
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}$")]
"""An Ed25519 signature, unpadded standard base64 (86 characters), as vodozemac prints it."""


class EntrySignature(Strict):
    seq: int = Field(ge=1)
    device: DeviceId
    signature: Signature


class SignaturesIn(Strict):
    signatures: list[EntrySignature] = Field(min_length=1, max_length=100)


class SignaturesOut(BaseModel):
    room: str
    signed: list[int]
    """The seqs that carry the caller's signature now (new or sent before)."""
