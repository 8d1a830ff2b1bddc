"""End-to-end parties: real ``ChatClient``s with the real crypto engine, each in its own
profile, talking through the real server (embedded and cluster)."""

from __future__ import annotations

import uuid
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.client.harness import FAST_KDF, PASSWORD, Recorder, base_url, signup
from tui.client.client import ChatClient
from tui.client.e2ee import E2ee
from tui.client.events import MessageShown, MessageUndecryptable, SecurityAlert
from tui.client.profile import login_device, make_client, new_device_id
from tui.crypto import LocalStore


class Party:
    """One person on one device: client, engine, and everything the client emitted."""

    def __init__(self, client: ChatClient, store: LocalStore, e2ee: E2ee, seen: Recorder):
        self.client, self.store, self.e2ee, self.seen = client, store, e2ee, seen

    @property
    def id(self) -> str:
        return self.client.user

    def texts(self, room: str) -> list[str]:
        return [m.text for m in self.seen.shown(room)]

    def undecryptable(self, room: str) -> list[MessageUndecryptable]:
        return [e for e in self.seen.seen if isinstance(e, MessageUndecryptable) and e.room == room]

    def alerts(self) -> list[SecurityAlert]:
        return [e for e in self.seen.seen if isinstance(e, SecurityAlert)]

    def latest(self, room: str) -> MessageShown:
        return self.seen.shown(room)[-1]

    async def close(self) -> None:
        await self.client.close()
        self.store.close()


async def party(server: TestClient, home: Path, uid: str | None = None) -> Party:
    uid = uid or await signup(server)
    store = LocalStore.open(home / f"{uid}-{uuid.uuid4().hex[:6]}.sqlite3", "pp", kdf=FAST_KDF)
    client = make_client(base_url(server), store, None)
    seen = Recorder(client)
    e2ee = await login_device(client, store, uid, PASSWORD, new_device_id())
    client.connect()
    await client.wait_synced()
    return Party(client, store, e2ee, seen)


async def befriend(a: Party, b: Party) -> None:
    await a.client.api.request_friend(b.id)
    await b.client.api.accept_friend(a.id)


async def group(owner: Party, *members: Party, name: str = "team") -> str:
    room = (await owner.client.rooms.create(name))["id"]
    for m in members:
        if m.id not in {f["id"] for f in (await owner.client.api.friends())["friends"]}:
            await befriend(owner, m)
        await owner.client.rooms.invite(room, m.id)
        await m.client.rooms.join(room, m.id)
    return room
