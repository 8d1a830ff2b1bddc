"""A chat app with auth beside it, real accounts, and a recorder in place of the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp.test_utils import TestClient

from backend.chat.app import create_app
from backend.chat.social import SocialService
from backend.common.settings import Settings
from backend.common.typedefs import CHAT_RUNTIME

PASSWORD = "correct horse battery staple"


class Person:
    """A signed-up, logged-in user who talks to /chat/ with their own token."""

    def __init__(self, client: TestClient, uid: str) -> None:
        self.client, self.id, self.token = client, uid, ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def login(self) -> None:
        r = await self.client.post("/auth/login", json={"id": self.id, "passwd": PASSWORD})
        assert r.status == 200, await r.text()
        self.token = (await r.json())["token"]

    async def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        r = await self.client.request(method, "/chat" + path, json=body, headers=self.auth)
        data = await r.json()
        assert r.status == expect, (method, path, r.status, data)
        return data

    async def error(self, method: str, path: str, body: Any = None, *, expect: int) -> str:
        """The error code of a call that must fail with ``expect``."""
        return (await self.call(method, path, body, expect=expect))["error"]["code"]

    async def delete_account(self) -> None:
        r = await self.client.delete(
            "/auth/account", json={"passwd": PASSWORD, "confirm": True}, headers=self.auth
        )
        assert r.status == 200, await r.text()


class World:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.notes: list[tuple[list[str], dict[str, Any]]] = []
        self.social.set_notifier(self._record)
        self.records: list[tuple[str, str, dict[str, Any]]] = []
        events = self.client.app[CHAT_RUNTIME].events
        emit = events.emit

        def record(category: str, subject: str, **data: Any) -> None:
            self.records.append((category, subject, data))
            emit(category, subject, **data)

        events.emit = record  # type: ignore[method-assign]

    @property
    def social(self) -> SocialService:
        return self.client.app[CHAT_RUNTIME].social

    async def _record(self, users: Sequence[str], event: dict[str, Any], /) -> None:
        self.notes.append((list(users), event))

    def seen_by(self, who: Person, /, **match: Any) -> list[dict[str, Any]]:
        """Events delivered to ``who`` that carry every ``match`` item, oldest first."""
        return [
            e
            for users, e in self.notes
            if who.id in users and all(e.get(k) == v for k, v in match.items())
        ]

    async def person(self, uid: str | None = None) -> Person:
        p = Person(self.client, uid or "u" + uuid.uuid4().hex[:12])
        r = await self.client.post(
            "/auth/signup", json={"id": p.id, "passwd": PASSWORD, "email": f"{p.id}@example.org"}
        )
        assert r.status == 200, await r.text()
        await p.login()
        return p

    async def befriend(self, a: Person, *others: Person) -> None:
        for b in others:
            await a.call("POST", "/friends/requests", {"user": b.id})
            await b.call("POST", f"/friends/requests/{a.id}/accept")

    async def group(self, owner: Person, *members: Person, name: str = "team") -> str:
        """A group room of ``owner`` that ``members`` (friends of the owner) have joined."""
        room = (await owner.call("POST", "/rooms", {"name": name}, expect=201))["id"]
        for m in members:
            if owner.id not in await self.social.friends_of(m.id):
                await self.befriend(owner, m)
            await owner.call("POST", f"/rooms/{room}/invites", {"user": m.id}, expect=201)
            await m.call("POST", f"/rooms/{room}/join")
        return room


async def make_world(aiohttp_client: Any, settings: Settings) -> World:
    return World(await aiohttp_client(create_app(settings)))
