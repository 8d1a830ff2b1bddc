"""How the social graph tells connected users about changes, without knowing about sockets.

The WebSocket gateway supplies the ``Notifier`` (``runtime.social.notices.notifier = …``);
until it does, and in a process without a gateway, events go nowhere. Tests pass a recorder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("sealchat.chat.notify")

Event = dict[str, Any]


class Notifier(Protocol):
    """Deliver ``event`` to every connected device of ``users`` (best effort)."""

    async def __call__(self, users: Sequence[str], event: Event, /) -> None: ...


async def nobody(users: Sequence[str], event: Event, /) -> None:
    """The notifier of a process with no gateway: the change is in the store, nobody is told."""


class Notices:
    """The one notifier shared by the friend and room services.

    Called only after the change has committed; a failing notifier is logged and never
    undoes or fails the change (clients catch up from the REST reads and the membership log).
    """

    def __init__(self, notifier: Notifier = nobody) -> None:
        self.notifier = notifier

    async def send(self, users: Sequence[str], event: Event) -> None:
        if not users:
            return
        try:
            await self.notifier(list(dict.fromkeys(users)), event)
        except Exception:
            log.exception("notifier failed", extra={"event_type": event.get("type")})
