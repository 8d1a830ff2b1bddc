"""What the server forgets when a group room is deleted: its messages and its files.

The membership log stays (a deleted room keeps its id and log, ending in ``delete``), so a
former member's client can still verify how the room ended. Messages still in flight when the
room was deleted may be archived after the purge; no member remains who could read them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from backend.common.resources import Stores

log = logging.getLogger("sealchat.chat.purge")


def purge_room(stores: Stores) -> Callable[[str], Awaitable[None]]:
    async def purge(room_id: str) -> None:
        messages = files = 0
        if stores.documents is not None:
            messages = await stores.documents.delete_room(room_id)
        if stores.blobs is not None:
            files = await stores.blobs.delete_room(room_id)
        log.info("deleted room purged", extra={"messages": messages, "files": files})

    return purge
