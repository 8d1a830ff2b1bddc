"""Shared by the security tests: figures on stdout, people with devices and sockets."""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.auth.device_keys import TestDevice

PASSWORD = "correct horse battery staple"
STEP = 10.0


def report(title: str, **figures: Any) -> None:
    """One line of figures (shown with ``pytest -s``, or ``-rP`` for passing tests)."""
    print(f"[security] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f}ms"


class User:
    """A signed-up user with a token, a registered device and helpers for REST and frames."""

    def __init__(self, client: TestClient, uid: str) -> None:
        self.client, self.id = client, uid
        self.token, self.refresh = "", ""
        self.device = TestDevice(uid)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        r = await self.client.request(method, path, json=body, headers=self.auth)
        return r.status, await r.json()

    async def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, data = await self.call(method, path, body)
        assert status == expect, (method, path, status, data)
        return data

    async def socket(self) -> Peer:
        ws = await self.client.ws_connect("/chat/ws")
        peer = Peer(ws)
        reply = await peer.request(
            {"id": 1, "type": "auth", "token": self.token, "device": self.device.device_id}
        )
        assert reply["success"], reply
        return peer


async def new_user(client: TestClient, *, address: str = "10.1.1.1") -> User:
    user = User(client, "u" + uuid.uuid4().hex[:12])
    body = {"id": user.id, "passwd": PASSWORD, "email": f"{user.id}@example.org"}
    r = await client.post("/auth/signup", json=body)
    assert r.status == 200, await r.text()
    r = await client.post(
        "/auth/login",
        json={"id": user.id, "passwd": PASSWORD},
        headers={"X-Forwarded-For": address},
    )
    assert r.status == 200, await r.text()
    data = await r.json()
    user.token, user.refresh = data["token"], data["refresh_token"]
    r = await client.post("/auth/devices", json=user.device.registration(), headers=user.auth)
    assert r.status == 201, await r.text()
    return user


async def befriend(a: User, b: User) -> None:
    await a.ok("POST", "/chat/friends/requests", {"user": b.id})
    await b.ok("POST", f"/chat/friends/requests/{a.id}/accept")


async def group(owner: User, *members: User) -> str:
    room: str = (await owner.ok("POST", "/chat/rooms", {"name": "team"}, expect=201))["id"]
    for m in members:
        await owner.ok("POST", f"/chat/rooms/{room}/invites", {"user": m.id}, expect=201)
        await m.ok("POST", f"/chat/rooms/{room}/join")
    return room


class Peer:
    """One socket that keeps frames it was not asked for in a backlog."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []
        self.next_id = 2

    async def _recv(self, wait: float) -> dict[str, Any] | None:
        msg = await self.ws.receive(timeout=wait)
        if msg.type is not WSMsgType.TEXT:
            return None
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send_json(frame)
        for i, f in enumerate(self.backlog):
            if f.get("type") == "result" and f.get("id") == frame["id"]:
                return self.backlog.pop(i)
        async with asyncio.timeout(STEP):
            while True:
                got = await self._recv(STEP)
                assert got is not None, f"socket closed ({self.ws.close_code})"
                if got.get("type") == "result" and got.get("id") == frame["id"]:
                    return got
                self.backlog.append(got)

    async def ask(self, frame_type: str, /, **fields: Any) -> dict[str, Any]:
        frame = {"id": self.next_id, "type": frame_type, **fields}
        self.next_id += 1
        return await self.request(frame)

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every frame that arrives until ``quiet`` seconds pass without one."""
        while True:
            try:
                got = await self._recv(quiet)
            except TimeoutError:
                break
            if got is None:
                break
            self.backlog.append(got)
        out, self.backlog = self.backlog, []
        return out

    async def closed(self, wait: float = STEP) -> int | None:
        """Wait for the server to close the socket; its close code."""
        async with asyncio.timeout(wait):
            while True:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.CLOSE:
                    return int(msg.data)
                if msg.type is not WSMsgType.TEXT:
                    return self.ws.close_code
