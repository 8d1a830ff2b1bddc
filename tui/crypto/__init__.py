"""End-to-end encryption core: sans-I/O, no Textual, no aiohttp (see API.md)."""

from tui.crypto.aead import KdfParams
from tui.crypto.attachments import FileKey, decrypt_file, encrypt_file
from tui.crypto.engine import Engine
from tui.crypto.errors import (
    AttachmentCorrupt,
    CryptoError,
    MembershipUnknown,
    NoAccount,
    NoSession,
    SasError,
    SendingHeld,
    StoreCorrupt,
    WrongPassphrase,
)
from tui.crypto.expiry import expires_at, is_expired
from tui.crypto.rooms import RotationPolicy
from tui.crypto.store import LocalStore, OutboxItem
from tui.crypto.types import (
    Decrypted,
    DeviceInfo,
    DeviceRef,
    Effect,
    IdentityChange,
    Membership,
    RoomKeyReceived,
    RoomSend,
    SasUpdate,
    SessionRecovered,
    ToDeviceContent,
    ToDeviceFailed,
    ToDeviceOut,
    Undecryptable,
)

__all__ = [
    "AttachmentCorrupt",
    "CryptoError",
    "Decrypted",
    "DeviceInfo",
    "DeviceRef",
    "Effect",
    "Engine",
    "FileKey",
    "IdentityChange",
    "KdfParams",
    "LocalStore",
    "Membership",
    "MembershipUnknown",
    "NoAccount",
    "NoSession",
    "OutboxItem",
    "RoomKeyReceived",
    "RoomSend",
    "RotationPolicy",
    "SasError",
    "SasUpdate",
    "SendingHeld",
    "SessionRecovered",
    "StoreCorrupt",
    "ToDeviceContent",
    "ToDeviceFailed",
    "ToDeviceOut",
    "Undecryptable",
    "WrongPassphrase",
    "decrypt_file",
    "encrypt_file",
    "expires_at",
    "is_expired",
]
