"""The seam between the transport and end-to-end encryption.

``ChatClient`` moves ciphertext; a ``RoomCipher`` turns content into ciphertext and back,
sharing keys over to-device messages as it goes. The product cipher is ``tui.client.e2ee.E2ee``
(the ``tui.crypto`` engine). The seam keeps the transport testable on its own and keeps every
crypto decision in one place.
"""

from __future__ import annotations

from typing import Any, Protocol

from backend.protocol.frames import MemberEvent, Message, ToDevice
from tui.client.events import ClientEvent


class RoomCipher(Protocol):
    async def on_online(self) -> None:
        """A socket just authenticated: send queued to-device messages, top up keys."""

    async def seal(self, room: str, content: dict[str, Any]) -> str:
        """``content`` encrypted for ``room``'s verified members; key shares sent first."""

    async def open(self, message: Message) -> list[ClientEvent]:
        """What a committed room message means for the UI (decrypted, or why not)."""

    async def on_to_device(self, frame: ToDevice) -> list[ClientEvent]:
        """Process (and durably store) one to-device message; the client acks it after."""

    async def on_member_event(self, frame: MemberEvent) -> list[ClientEvent]:
        """The membership of a room changed: re-verify its signed log."""

    async def membership_changed(
        self, room: str, frame: MemberEvent | None = None
    ) -> list[ClientEvent]:
        """Entries of ``room``'s log were signed (``log_signed``): verify them again."""
