"""Values the engine hands to the client: plain frozen dataclasses, no behaviour of note."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, order=True)
class DeviceRef:
    user: str
    device: str

    def __str__(self) -> str:
        return f"{self.user}/{self.device}"


@dataclass(frozen=True)
class DeviceInfo:
    user: str
    device: str
    ed25519: str
    curve25519: str
    verified: bool = False
    removed: bool = False

    @property
    def ref(self) -> DeviceRef:
        return DeviceRef(self.user, self.device)


@dataclass(frozen=True)
class ToDeviceOut:
    """One ``send_to_device`` frame to send: ``msg_id`` is ours, reused on a resend."""

    msg_id: str
    user: str
    device: str
    ciphertext: str


@dataclass(frozen=True)
class IdentityChange:
    user: str
    device: str
    kind: Literal["new_device", "key_changed", "removed", "bad_signature"]
    held: bool

    def __str__(self) -> str:
        what = {
            "new_device": "signed in on a new device",
            "key_changed": "has a new security key on an existing device",
            "removed": "removed a device",
            "bad_signature": "has a device record with a bad signature (ignored)",
        }[self.kind]
        tail = ": check the safety number, then acknowledge to send again" if self.held else ""
        return f"{self.user} {what} ({self.device}){tail}"


@dataclass(frozen=True)
class RoomSend:
    ciphertext: str
    session_id: str
    shared_with: list[DeviceRef] = field(default_factory=list)
    skipped: list[DeviceRef] = field(default_factory=list)


@dataclass(frozen=True)
class Decrypted:
    room: str
    seq: int
    msg_id: str
    sender: str
    sender_device: str
    content: dict[str, Any]
    verified: bool
    session_id: str
    index: int


UNDECRYPTABLE_TEXT = {
    "no_session": "cannot decrypt yet (waiting for keys from {waiting_for})",
    "before_join": "cannot decrypt: sent before this device received the room's keys",
    "sender_mismatch": "rejected: the sender does not match the device that shared the key",
    "not_member": "not shown: the sender is not a verified member of this room (yet)",
    "replay": "rejected: a replayed copy of an earlier message",
    "tampered": "rejected: the message was changed in transit",
    "bad_format": "rejected: not a sealchat encrypted message",
}


@dataclass(frozen=True)
class Undecryptable:
    room: str
    seq: int
    msg_id: str
    sender: str
    sender_device: str
    reason: str
    waiting_for: str | None = None

    @property
    def retryable(self) -> bool:
        return self.reason in ("no_session", "not_member")

    def __str__(self) -> str:
        return UNDECRYPTABLE_TEXT[self.reason].format(waiting_for=self.waiting_for)


RoomResult = Decrypted | Undecryptable


@dataclass(frozen=True)
class Membership:
    room: str
    members: dict[str, str]
    """user → role (``admin``/``member``) admitted by validly signed entries."""
    pending: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    last_seq: int = 0
    ever: list[str] = field(default_factory=list)
    """Everyone a valid entry admitted at some point: only their messages are accepted."""


@dataclass(frozen=True)
class RoomKeyReceived:
    room: str
    session_id: str
    sender: str
    sender_device: str


@dataclass(frozen=True)
class SessionRecovered:
    user: str
    device: str


@dataclass(frozen=True)
class ToDeviceFailed:
    sender: str
    sender_device: str
    reason: str


@dataclass(frozen=True)
class SasUpdate:
    txn: str
    user: str
    device: str
    state: Literal["requested", "keys_exchanged", "verified", "cancelled"]
    emoji: list[tuple[str, str]] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ToDeviceContent:
    sender: str
    sender_device: str
    content: dict[str, Any]


Effect = RoomKeyReceived | SessionRecovered | ToDeviceFailed | SasUpdate | ToDeviceContent
