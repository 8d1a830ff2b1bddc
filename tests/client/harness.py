"""Client-core tests: real ``ChatClient``s against the real server on a loopback port.

The transport is tested on its own here, so messages go through ``PlainCipher``, a test
double that wraps content in JSON without encrypting it. The product always attaches
``tui.client.e2ee.E2ee`` (exercised in ``tests/e2e/``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from backend.protocol.frames import MemberEvent, Message, ToDevice
from tests.auth.device_keys import TestDevice
from tui.client.client import ChatClient
from tui.client.events import ClientEvent, MessageShown
from tui.client.tokens import SealedTokens
from tui.crypto.aead import KdfParams
from tui.crypto.store import LocalStore

PASSWORD = "correct horse battery staple"
#: The cheapest Argon2id the store accepts: tests open many stores.
FAST_KDF = KdfParams(time_cost=2, memory_kib=19456, parallelism=1)
STEP = 20.0


class PlainCipher:
    """Test double for ``RoomCipher``: content as base64 JSON, no keys, no verification."""

    def __init__(self) -> None:
        self.to_device: list[ToDevice] = []

    async def on_online(self) -> None:
        return None

    async def seal(self, room: str, content: dict[str, Any]) -> str:
        return base64.b64encode(json.dumps(content).encode()).decode()

    async def open(self, message: Message) -> list[ClientEvent]:
        content = json.loads(base64.b64decode(message.ciphertext))
        return [
            MessageShown(
                message.room,
                message.seq,
                message.msg_id,
                message.sender,
                message.device,
                message.ts,
                content,
            )
        ]

    async def on_to_device(self, frame: ToDevice) -> list[ClientEvent]:
        self.to_device.append(frame)
        return []

    async def on_member_event(self, frame: MemberEvent) -> list[ClientEvent]:
        return []

    async def membership_changed(
        self, room: str, frame: MemberEvent | None = None
    ) -> list[ClientEvent]:
        return []


def base_url(server: TestClient) -> str:
    return str(server.make_url("")).rstrip("/")


async def signup(server: TestClient, uid: str | None = None) -> str:
    uid = uid or "u" + uuid.uuid4().hex[:12]
    r = await server.post(
        "/auth/signup", json={"id": uid, "passwd": PASSWORD, "email": f"{uid}@example.org"}
    )
    assert r.status == 200, await r.text()
    return uid


class Recorder:
    """Every event a client emitted, and a way to wait for the ones a test expects."""

    def __init__(self, client: ChatClient) -> None:
        self.seen: list[ClientEvent] = []
        self._changed = asyncio.Event()
        client.events.on(self._add)

    def _add(self, ev: ClientEvent) -> None:
        self.seen.append(ev)
        self._changed.set()

    def shown(self, room: str | None = None) -> list[MessageShown]:
        return [e for e in self.seen if isinstance(e, MessageShown) and room in (None, e.room)]

    async def until(self, check: Any, within: float = STEP) -> None:
        async with asyncio.timeout(within):
            while not check():
                self._changed.clear()
                await self._changed.wait()


async def open_client(
    server: TestClient,
    home: Path,
    uid: str,
    *,
    device: TestDevice | None = None,
    login: bool = True,
) -> tuple[ChatClient, Recorder]:
    """A logged-in client for ``uid`` with a registered device and ``PlainCipher``."""
    store = LocalStore.open(home / uid / "store.sqlite3", "test passphrase", kdf=FAST_KDF)
    dev = device or TestDevice(uid)
    client = ChatClient(base_url(server), store, SealedTokens(store), device_id=dev.device_id)
    client.cipher = PlainCipher()
    if login:
        await client.login(uid, PASSWORD)
        if device is None:
            await client.api.register_device(dev.registration())
    return client, Recorder(client)


async def group_of(owner: ChatClient, *members: ChatClient, name: str = "team") -> str:
    """A group room of ``owner`` that every member joined (befriending them first)."""
    room = (await owner.api.create_room(name))["id"]
    for m in members:
        await owner.api.request_friend(m.user)
        await m.api.accept_friend(owner.user)
        await owner.api.invite(room, m.user)
        await m.api.join(room)
    return room
