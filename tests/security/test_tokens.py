"""Tokens and sessions under attack: forgeries, replayed refresh tokens, logout everywhere."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import WSMsgType

from backend.chat.app import create_app
from backend.common.settings import Mode
from backend.common.typedefs import AUTH_SERVICE
from backend.protocol.errors import CloseCode
from tests.security.forgery import forged_tokens
from tests.security.helpers import new_user, report

pytestmark = pytest.mark.security


async def _ws_accepts(client: Any, token: str) -> bool:
    ws = await client.ws_connect("/chat/ws")
    try:
        await ws.send_json({"id": 1, "type": "auth", "token": token})
        msg = await ws.receive(timeout=10)
        if msg.type is not WSMsgType.TEXT:
            return False
        ok = bool(msg.json().get("success"))
        if not ok:  # a refused auth also ends the connection
            closing = await ws.receive(timeout=10)
            assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), closing
            assert ws.close_code == CloseCode.AUTH_FAILED
        return ok
    finally:
        await ws.close()


async def test_forged_tokens_are_accepted_nowhere(stack):
    client = await stack()
    alice = await new_user(client)
    # The controls: the real token works at each place we attack.
    assert (await client.get(f"/auth/getuser/{alice.id}", headers=alice.auth)).status == 200
    assert (await client.get("/chat/rooms", headers=alice.auth)).status == 200
    assert await _ws_accepts(client, alice.token)

    forged = forged_tokens(client.app[AUTH_SERVICE].issuer, alice.id, alice.refresh)
    accepted: list[str] = []
    codes: set[str] = set()
    for name, token in forged.items():
        headers = {"Authorization": f"Bearer {token}"}
        for where, path in (("auth", f"/auth/getuser/{alice.id}"), ("chat", "/chat/rooms")):
            r = await client.get(path, headers=headers)
            body = await r.json()
            if r.status != 401:
                accepted.append(f"{where}: {name} ({r.status})")
            codes.add(body["error"]["code"])
            assert token not in str(body), "an error never echoes the token"
        if await _ws_accepts(client, token):
            accepted.append(f"ws: {name}")
    attempts = 3 * len(forged)
    report("forged tokens", kinds=len(forged), attempts=attempts, accepted=len(accepted))
    assert accepted == []
    assert codes <= {"unauthorized", "token_expired"}


async def test_replaying_a_rotated_refresh_token_ends_the_family(stack):
    client = await stack()
    alice = await new_user(client)
    spent = alice.refresh
    chain = []
    for _ in range(3):  # a few honest rotations
        r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh})
        assert r.status == 200
        body = await r.json()
        alice.token, alice.refresh = body["token"], body["refresh_token"]
        chain.append(body["token"])
    ws = await alice.socket()
    r = await client.post("/auth/refresh", json={"refresh_token": spent})  # the thief
    assert (r.status, (await r.json())["error"]["code"]) == (401, "refresh_reused")
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh})
    assert r.status == 401, "the newest token of the family is dead too"
    for token in chain:
        r = await client.get("/chat/rooms", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401, "every access token of the family is refused"
    assert await ws.closed() == CloseCode.AUTH_FAILED
    report("refresh replay", rotations=3, family_tokens_refused=len(chain), socket_closed=True)


async def test_logout_is_enforced_everywhere_within_a_second(stack, make_settings):
    client = await stack()
    nodes = [client]
    if make_settings().mode is Mode.CLUSTER:
        # A second node on the same Redis: "everywhere" means every node of the cluster.
        from aiohttp.test_utils import TestClient, TestServer

        other = TestClient(TestServer(create_app(make_settings())))
        await other.start_server()
        nodes.append(other)
    try:
        alice = await new_user(client)
        bob = await new_user(client)
        sockets = []  # two on every node
        for node in nodes:
            alice.client = node
            sockets += [await alice.socket(), await alice.socket()]
        bob.client = nodes[-1]
        bystander = await bob.socket()
        alice.client = client
        r = await client.post("/auth/logout", headers=alice.auth)
        assert r.status == 200
        started = time.monotonic()
        denied_after: list[float] = []
        for node in nodes:
            while True:
                r = await node.get("/chat/rooms", headers=alice.auth)
                if r.status == 401:
                    denied_after.append(time.monotonic() - started)
                    break
                assert time.monotonic() - started < 1.0, "the token still works after 1 s"
                await asyncio.sleep(0.02)
        codes = await asyncio.gather(*(s.closed(wait=5) for s in sockets))
        closed_after = time.monotonic() - started
        assert set(codes) == {CloseCode.AUTH_FAILED}
        assert (await bystander.ask("ping"))["success"], "other users keep their sockets"
        report(
            "logout",
            nodes=len(nodes),
            denied_within_s=f"{max(denied_after):.3f}",
            sockets_closed=f"{len(sockets)}/{len(sockets)}",
            all_closed_within_s=f"{closed_after:.3f}",
        )
        assert max(denied_after) <= 1.0
    finally:
        if len(nodes) > 1:
            await nodes[1].close()
