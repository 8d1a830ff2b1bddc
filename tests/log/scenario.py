"""Every service in one app (as ``sealchatd all`` runs them), an operator, and a scenario
that makes each kind of event once, remembering every secret it used so that tests can
check that none of them reached the event log or a log line."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

from backend.common.settings import Settings
from backend.server import build_root
from tests.auth.device_keys import TestDevice
from tests.chat.ws_helpers import connect, recv

EVERY_SERVICE = ["auth", "chat", "archiver", "log"]
PASSWORD = "Tr0ub4dor&3-never-logged"
STEP = 10.0


def new_id(prefix: str = "u") -> str:
    return prefix + uuid.uuid4().hex[:12]


@dataclass
class User:
    client: TestClient
    id: str
    token: str = ""
    refresh: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def signup(self) -> None:
        r = await self.client.post(
            "/auth/signup",
            json={"id": self.id, "passwd": PASSWORD, "email": f"{self.id}@example.org"},
        )
        assert r.status == 200, await r.text()

    async def login(self, password: str = PASSWORD, expect: int = 200) -> None:
        r = await self.client.post("/auth/login", json={"id": self.id, "passwd": password})
        assert r.status == expect, await r.text()
        if expect == 200:
            body = await r.json()
            self.token, self.refresh = body["token"], body["refresh_token"]

    async def chat(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        r = await self.client.request(method, "/chat" + path, json=body, headers=self.auth)
        data = await r.json()
        assert r.status == expect, (method, path, r.status, data)
        return data


def stack_settings(settings: Settings, operator: str) -> Settings:
    auth = settings.auth.model_copy(update={"admins": [operator]})
    return settings.model_copy(update={"auth": auth})


async def stack(aiohttp_client: Any, settings: Settings, operator: str) -> TestClient:
    return await aiohttp_client(build_root(stack_settings(settings, operator), EVERY_SERVICE))


@dataclass
class Scenario:
    """What ``run_scenario`` did, for the assertions."""

    alice: User
    bob: User
    room: str
    msg_id: str
    secrets: list[str] = field(default_factory=list)
    """Passwords, tokens and message bodies that must never be logged anywhere."""


async def run_scenario(client: TestClient) -> Scenario:
    """Sign up, fail and succeed to log in, refresh, befriend, make a room, connect a device,
    send a message (and one refused), disconnect, log out: every chat and auth event once."""
    alice, bob = User(client, new_id()), User(client, new_id())
    for u in (alice, bob):
        await u.signup()
    await alice.login("wrong password, also secret", expect=401)
    for u in (alice, bob):
        await u.login()
    old_refresh = alice.refresh
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh})
    assert r.status == 200, await r.text()
    body = await r.json()
    first_token, alice.token, alice.refresh = alice.token, body["token"], body["refresh_token"]

    await alice.chat("POST", "/friends/requests", {"user": bob.id})
    await bob.chat("POST", f"/friends/requests/{alice.id}/accept")
    room = (await alice.chat("POST", "/rooms", {"name": "log-test"}, expect=201))["id"]
    await alice.chat("POST", f"/rooms/{room}/invites", {"user": bob.id}, expect=201)
    await bob.chat("POST", f"/rooms/{room}/join")

    device = TestDevice(alice.id)
    r = await client.post("/auth/devices", json=device.registration(), headers=alice.auth)
    assert r.status == 201, await r.text()
    listener = await connect(client, bob.token)  # bob reads along: a live delivery
    ws = await connect(client, alice.token, device=device.device_id)
    mid = uuid.uuid4().hex
    ciphertext = "CIPHERTEXT-" + uuid.uuid4().hex
    await ws.send_json(
        {"id": 2, "type": "send", "msg_id": mid, "room": room, "ciphertext": ciphertext}
    )
    async with asyncio.timeout(STEP):
        while (reply := await recv(ws))["type"] != "result":
            pass
    assert reply["success"], reply
    async with asyncio.timeout(STEP):
        while (pushed := await recv(listener))["type"] != "message":
            pass
    assert pushed["msg_id"] == mid and pushed["ciphertext"] == ciphertext
    await listener.close()
    refused = "REFUSED-" + uuid.uuid4().hex
    await ws.send_json(
        {
            "id": 3,
            "type": "send",
            "msg_id": uuid.uuid4().hex,
            "room": "r_" + "x" * 22,
            "ciphertext": refused,
        }
    )
    async with asyncio.timeout(STEP):
        while (reply := await recv(ws))["type"] != "result":
            pass
    assert not reply["success"], reply
    await ws.close()
    r = await client.post("/auth/logout", headers=alice.auth)
    assert r.status == 200, await r.text()
    secrets = [
        PASSWORD,
        "wrong password, also secret",
        first_token,
        alice.token,
        old_refresh,
        alice.refresh,
        bob.token,
        bob.refresh,
        ciphertext,
        refused,
    ]
    return Scenario(alice, bob, room, mid, secrets)


async def events_of(operator: User, **query: str) -> list[dict[str, Any]]:
    r = await operator.client.get("/log/events", params=query, headers=operator.auth)
    assert r.status == 200, await r.text()
    return (await r.json())["events"]


async def wait_for_events(
    operator: User, count: int, seconds: float = 30.0, **query: str
) -> list[dict[str, Any]]:
    """The records matching ``query`` once there are at least ``count`` of them."""
    async with asyncio.timeout(seconds):
        while len(found := await events_of(operator, **query)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return found
