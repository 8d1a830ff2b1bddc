"""Membership changes made from this device: the REST call, then the change is announced to the
crypto engine (``expect_membership``, now that the room id is known) and its log entry signed,
so every other member can check that this device made it. The engine signs only entries that
match an announced change, so an entry the server invents is never signed.

Without E2EE attached (a device-less session), the calls are made unsigned: other members'
clients then treat the change as pending and share no keys because of it.
"""

from __future__ import annotations

from typing import Any

from tui.client.api import Api
from tui.client.e2ee import E2ee


class RoomActions:
    def __init__(self, api: Api, e2ee: E2ee | None) -> None:
        self.api = api
        self.e2ee = e2ee

    async def _signed(
        self, room: str, action: str, target: str | None, role: str | None = None
    ) -> None:
        if self.e2ee is not None:
            self.e2ee.engine.expect_membership(room, action, target, role)
            await self.e2ee.sign_own(room)

    async def create(self, name: str, topic: str = "") -> dict[str, Any]:
        room = await self.api.create_room(name, topic)
        await self._signed(room["id"], "create", room["creator"])
        return room

    async def direct(self, user: str) -> dict[str, Any]:
        """The 1:1 room with a friend (opened or reopened)."""
        room = await self.api.open_direct(user)
        await self._signed(room["id"], "open", user)
        return room

    async def invite(self, room: str, user: str) -> None:
        await self.api.invite(room, user)
        await self._signed(room, "invite", user)

    async def join(self, room: str, me: str) -> dict[str, Any]:
        joined = await self.api.join(room)
        await self._signed(room, "join", me)
        return joined

    async def kick(self, room: str, user: str) -> None:
        await self.api.kick(room, user)
        await self._signed(room, "kick", user)

    async def set_role(self, room: str, user: str, role: str) -> None:
        await self.api.set_role(room, user, role)
        await self._signed(room, "role", user, role)

    async def leave(self, room: str) -> None:
        await self.api.leave(room)
        if self.e2ee is not None:
            self.e2ee.forget_room(room)

    async def delete(self, room: str) -> None:
        await self.api.delete_room(room)
        if self.e2ee is not None:
            self.e2ee.forget_room(room)
