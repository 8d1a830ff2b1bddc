"""Errors of the crypto core. Each message says what happened and what the person can do."""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every error raised by ``tui.crypto``."""


class WrongPassphrase(CryptoError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"the passphrase does not unlock {path}: try again, or pick another profile with --home"
        )


class StoreCorrupt(CryptoError):
    """A row failed authentication: the file was changed by something other than sealchat."""


class NoAccount(CryptoError):
    def __init__(self) -> None:
        super().__init__("this profile has no device keys yet: log in to create them")


class SendingHeld(CryptoError):
    def __init__(self, users: list[str]) -> None:
        self.users = sorted(users)
        names = ", ".join(self.users)
        super().__init__(
            f"the security key of {names} changed: check it (safety number or emoji), then "
            "acknowledge the change to send again"
        )


class MembershipUnknown(CryptoError):
    def __init__(self, room: str) -> None:
        self.room = room
        super().__init__(
            f"the membership of room {room} is not verified yet: fetch its membership log first"
        )


class NoSession(CryptoError):
    def __init__(self, device: str) -> None:
        super().__init__(
            f"no encrypted channel to {device} yet: claim its keys (missing_sessions) first"
        )


class AttachmentCorrupt(CryptoError):
    """The blob does not match the key and hash from the message: it was changed or truncated."""


class SasError(CryptoError):
    """An emoji verification step was out of order or failed."""
