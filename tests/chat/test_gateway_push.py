"""The WebSocket gateway pushing to real clients: fan-out, slow readers, presence, shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from backend.protocol.errors import CloseCode
from backend.protocol.frames import Presence
from tests.auth.conftest import Account
from tests.chat.ws_helpers import (
    STEP,
    account,
    closed_with,
    connect,
    recv,
    recv_after,
    registry,
)

# --- pushing -------------------------------------------------------------------------------


async def test_push_reaches_every_connection_of_a_user_and_nobody_else(app_client):
    client = await app_client()
    alice, bob = await account(client), await account(client)
    a1, a2 = await connect(client, alice.token), await connect(client, alice.token)
    b1 = await connect(client, bob.token)
    event = Presence(user=bob.id, online=True)
    assert registry(client).push([alice.id, alice.id, "nobody"], event) == 2
    expected = {"type": "presence", "user": bob.id, "online": True}
    assert await recv(a1) == expected
    assert await recv(a2) == expected
    assert (await recv_after(b1, {"id": 2, "type": "ping"}))["id"] == 2  # nothing before it
    assert (await recv_after(a1, {"id": 2, "type": "ping"}))["id"] == 2  # delivered once
    for ws in (a1, a2, b1):
        await ws.close()


async def test_notify_sends_protocol_events_and_drops_off_contract_ones(app_client):
    client = await app_client()
    alice, bob = await account(client), await account(client)
    ws = await connect(client, alice.token)
    gateway = registry(client)
    await gateway.notify([alice.id], {"type": "friend_event", "action": "no such action"})
    event = {"type": "friend_event", "action": "request", "from": bob.id, "to": alice.id}
    await gateway.notify([alice.id], event)
    assert await recv(ws) == event  # the off-contract one never arrived
    await ws.close()


async def test_a_slow_reader_is_cut_off_with_4008(app_client):
    client = await app_client(send_queue_size=4)
    alice = await account(client)
    ws = await connect(client, alice.token)
    gateway = registry(client)
    event = Presence(user=alice.id, online=True)
    queued = [gateway.push([alice.id], event) for _ in range(10)]  # no await: nothing is sent
    assert queued[:4] == [1, 1, 1, 1] and not any(queued[4:])
    assert await closed_with(ws) == CloseCode.TOO_SLOW
    for _ in range(100):
        if not gateway.online(alice.id):
            break
        await asyncio.sleep(0.01)
    assert not gateway.online(alice.id)
    again = await connect(client, alice.token)  # and may come back to catch up
    await again.close()


async def test_presence_hook_sees_first_and_last_connection(app_client):
    client = await app_client()
    alice = await account(client)
    calls: list[tuple[str, bool]] = []

    async def hook(user: str, online: bool) -> None:
        calls.append((user, online))

    registry(client).presence = hook
    one = await connect(client, alice.token)
    two = await connect(client, alice.token)
    await one.close()
    assert calls == [(alice.id, True)]
    await two.close()
    for _ in range(100):
        if len(calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert calls == [(alice.id, True), (alice.id, False)]


async def befriend(a: Account, b: Account) -> None:
    r = await a.client.post("/chat/friends/requests", json={"user": b.id}, headers=a.auth)
    assert r.status in (200, 201), await r.text()
    r = await b.client.post(f"/chat/friends/requests/{a.id}/accept", headers=b.auth)
    assert r.status in (200, 201), await r.text()


async def until_pong(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Every frame that arrives before the answer to a ping."""
    await ws.send_json({"id": 99, "type": "ping"})
    frames = []
    while (frame := await recv(ws)).get("id") != 99:
        frames.append(frame)
    return frames


def online(*users: str) -> list[dict[str, Any]]:
    return [{"type": "presence", "user": u, "online": True} for u in users]


async def test_a_new_connection_hears_which_friends_are_online_already(app_client):
    client = await app_client()
    alice, bob, carol, dave = [await account(client) for _ in range(4)]
    await befriend(alice, bob)
    await befriend(alice, carol)  # a friend, but offline
    b = await connect(client, bob.token)
    # The auth result comes before Bob's snapshot is taken; his pong comes after it. Without
    # this wait a slow snapshot could already see Alice, and Bob would hear her twice.
    assert await until_pong(b) == []
    d = await connect(client, dave.token)  # online, but no friend of alice
    a = await connect(client, alice.token)
    # Bob's own announcement may still be on its way when Alice signs in: the same frame
    # twice then, never another one.
    heard = await until_pong(a)
    assert heard[:1] == online(bob.id) and all(f == online(bob.id)[0] for f in heard)
    # Bob was online first: he hears Alice's change once (and nothing of his own).
    frame = await recv(b)
    while frame["type"] != "presence":
        frame = await recv(b)
    assert frame == online(alice.id)[0]
    assert await until_pong(b) == []
    # Alice's second socket (another device, say) gets the snapshot too.
    # (On a loaded machine Bob's announcement can still be in flight here too.)
    a2 = await connect(client, alice.token)
    heard = await until_pong(a2)
    assert heard[:1] == online(bob.id) and all(f == online(bob.id)[0] for f in heard)
    assert await until_pong(d) == []  # Dave is no one's friend: he hears nothing
    for ws in (a, a2, b, d):
        await ws.close()


# --- shutdown --------------------------------------------------------------------------------


async def test_shutdown_closes_every_socket_with_1001(app_client):
    client = await app_client()
    alice = await account(client)
    authed = await connect(client, alice.token)
    waiting = await client.ws_connect("/chat/ws")  # still in its auth phase
    started = time.monotonic()
    stopping = asyncio.create_task(client.server.close())
    try:
        assert await closed_with(authed) == CloseCode.GOING_AWAY
        assert await closed_with(waiting) == CloseCode.GOING_AWAY
    finally:
        await stopping
    assert time.monotonic() - started < STEP
