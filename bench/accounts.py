"""sealchat accounts, devices, friendships and rooms for the benchmark, made through the
public REST API exactly as a client makes them (no shortcut into the database).

Each user signs up, logs in, registers one device (real Ed25519/Curve25519 keys, the
registration signed as ``backend.protocol.signing`` says) and joins two group rooms: one of
``small`` members and one of ``large`` members. A room's creator befriends its members,
invites them, and they join.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from backend.protocol import signing

PASSWORD = secrets.token_urlsafe(18)
"""One password for every bench account of this run, made fresh each run."""
CONCURRENCY = 16
RETRIES = 8


@dataclass
class User:
    id: str
    token: str = ""
    device: str = ""
    rooms: dict[int, str] = field(default_factory=dict)
    """Room size → the id of this user's room of that size."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _raw(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def device_registration(user: str) -> dict[str, Any]:
    device = "B" + uuid.uuid4().hex[:9].upper()
    signer = Ed25519PrivateKey.generate()
    ed, curve = _b64(_raw(signer)), _b64(_raw(X25519PrivateKey.generate()))
    payload = signing.device_payload(user, device, ed, curve)
    return {
        "device_id": device,
        "display_name": "bench",
        "keys": {"ed25519": ed, "curve25519": curve},
        "signature": _b64(signer.sign(payload)),
    }


class Api:
    """REST calls with a bearer token; a 503 is retried as its message says, any other
    unexpected status stops the benchmark."""

    def __init__(self, http: aiohttp.ClientSession, auth_url: str, chat_url: str) -> None:
        self.http, self.auth_url, self.chat_url = http, auth_url, chat_url
        self.retried = 0
        """503 answers retried (embedded SQLite is busy under concurrent writes)."""

    async def call(
        self, method: str, url: str, body: Any = None, token: str = "", ok: tuple[int, ...] = (200,)
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for attempt in range(RETRIES):
            async with self.http.request(method, url, json=body, headers=headers) as r:
                data = await r.json(content_type=None)
                if r.status in ok:
                    return data
                if r.status != 503 or attempt == RETRIES - 1:
                    raise RuntimeError(f"{method} {url.split('/', 3)[-1]}: {r.status} {data}")
            self.retried += 1  # "cannot reach one of its stores: try again shortly"
            await asyncio.sleep(0.2 * (attempt + 1))
        return None


async def _bounded(jobs: list[Callable[[], Awaitable[None]]], limit: int = CONCURRENCY) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def make_users(
    api: Api,
    count: int,
    sizes: tuple[int, ...],
    progress: Callable[[str], None],
    concurrency: int = CONCURRENCY,
) -> list[User]:
    """``count`` users with a device each, in rooms of every size in ``sizes``."""
    run = uuid.uuid4().hex[:6]
    users = [User(f"b{run}{i}") for i in range(count)]
    a, c = api.auth_url, api.chat_url

    async def enrol(u: User) -> None:
        body = {"id": u.id, "passwd": PASSWORD, "email": f"{u.id}@example.org"}
        await api.call("POST", f"{a}/auth/signup", body)
        tokens = await api.call("POST", f"{a}/auth/login", {"id": u.id, "passwd": PASSWORD})
        u.token = tokens["token"]
        reg = device_registration(u.id)
        await api.call("POST", f"{a}/auth/devices", reg, u.token, ok=(201,))
        u.device = reg["device_id"]

    progress(f"signing up {count} users (Argon2id: the slow part)")
    await _bounded([functools.partial(enrol, u) for u in users], concurrency)

    groups: list[tuple[int, list[User]]] = []
    for size in sizes:
        for start in range(0, count - size + 1, size):
            groups.append((size, users[start : start + size]))
    pairs = {(g[0].id, m.id): (g[0], m) for _, g in groups for m in g[1:]}

    async def befriend(owner: User, member: User) -> None:
        await api.call("POST", f"{c}/chat/friends/requests", {"user": member.id}, owner.token)
        await api.call("POST", f"{c}/chat/friends/requests/{owner.id}/accept", None, member.token)

    progress(f"{len(pairs)} friendships, {len(groups)} rooms")
    await _bounded([functools.partial(befriend, *p) for p in pairs.values()], concurrency)

    async def room(size: int, members: list[User]) -> None:
        owner = members[0]
        made = await api.call(
            "POST", f"{c}/chat/rooms", {"name": f"bench {size}"}, owner.token, ok=(201,)
        )
        rid = made["id"]
        for m in members[1:]:
            await api.call(
                "POST", f"{c}/chat/rooms/{rid}/invites", {"user": m.id}, owner.token, ok=(201,)
            )
            await api.call("POST", f"{c}/chat/rooms/{rid}/join", None, m.token)
        for m in members:
            m.rooms[size] = rid

    await _bounded([functools.partial(room, *g) for g in groups], concurrency)
    if api.retried:
        progress(f"{api.retried} calls answered 503 (store busy) and were retried")
    return users
