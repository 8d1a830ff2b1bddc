"""A socket's life on the server's clock: the heartbeat, the token's end, the sign-in gate.

Real sockets against the whole app. The node's ``Watch`` looks at sockets once a second, so
the times asserted here allow for that second.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import pytest
from aiohttp import WSMsgType

from backend.chat.gateway import connection as connection_module
from backend.chat.gateway.connection import Connection
from backend.chat.gateway.registry import Registry
from backend.common.typedefs import AUTH_SERVICE
from backend.protocol.errors import CloseCode
from tests.chat.ws_helpers import STEP, account, closed_with, connect, recv, recv_after, registry

HEARTBEAT = 1.0


async def _next_ping(ws: aiohttp.ClientWebSocketResponse) -> float:
    msg = await ws.receive(timeout=STEP)
    assert msg.type is WSMsgType.PING, (msg.type, msg.data)
    return time.monotonic()


async def test_a_peer_that_answers_pings_stays_and_one_that_does_not_is_dropped(app_client):
    client = await app_client(heartbeat_seconds=HEARTBEAT)
    alice, bob = await account(client), await account(client)
    lively = await connect(client, alice.token, autoping=False)
    silent = await connect(client, bob.token, autoping=False)
    # Alice answers every ping; each comes after a heartbeat of silence (within the watch's
    # second), and she stays signed in.
    pings = []
    for _ in range(3):
        pings.append(await _next_ping(lively))
        await lively.pong()
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(HEARTBEAT - 0.05 <= gap <= HEARTBEAT + 1.5 for gap in gaps), gaps
    assert (await recv_after(lively, {"id": 2, "type": "ping"}))["success"]
    # Bob got as many pings (unread until now) and answered none: he is cut off, no close
    # frame (the server cannot expect an answer from a silent peer), and signed out.
    msg = await silent.receive(timeout=STEP)
    assert msg.type is WSMsgType.PING
    while msg.type is WSMsgType.PING:
        msg = await silent.receive(timeout=STEP)
    assert msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR), msg
    for _ in range(100):
        if not registry(client).online(bob.id):
            break
        await asyncio.sleep(0.02)
    assert not registry(client).online(bob.id)
    assert registry(client).online(alice.id)


async def test_any_frame_from_the_peer_counts_as_a_sign_of_life(app_client):
    client = await app_client(heartbeat_seconds=HEARTBEAT)
    alice = await account(client)
    ws = await connect(client, alice.token, autoping=False)
    # Requests every 0.3 s for three heartbeats: no ping is needed, none comes.
    for n in range(2, 12):
        reply = await recv_after(ws, {"id": n, "type": "ping"})
        assert reply["success"], reply
        await asyncio.sleep(0.3)


async def test_the_server_answers_a_ping_with_its_payload_before_and_after_auth(app_client):
    client = await app_client()
    alice = await account(client)
    ws = await client.ws_connect("/chat/ws", autoping=False)
    await ws.ping(b"before")
    msg = await ws.receive(timeout=STEP)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"before")
    await ws.send_json({"id": 1, "type": "auth", "token": alice.token})
    assert (await recv(ws))["success"]
    await ws.ping(b"after")
    msg = await ws.receive(timeout=STEP)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"after")


async def test_a_socket_is_closed_when_its_token_expires(app_client, monkeypatch):
    monkeypatch.setattr(connection_module, "LEEWAY_SECONDS", 0)
    client = await app_client()
    alice = await account(client)
    issuer = client.app[AUTH_SERVICE].issuer
    # A token with two seconds left (issued as if ttl - 2 seconds ago).
    token, claims = issuer.issue(
        sub=alice.id,
        sid="s" * 16,
        role="user",
        audiences=["chat"],
        now=time.time() - issuer.ttl_seconds + 2,
    )
    ws = await connect(client, token)
    assert (await recv_after(ws, {"id": 2, "type": "ping"}))["success"]
    assert await closed_with(ws) == CloseCode.AUTH_FAILED
    assert ws.close_code == CloseCode.AUTH_FAILED
    assert time.time() >= claims.exp
    assert time.time() < claims.exp + 2  # the watch's second, and some slack


def _hold_sign_in(gateway: Registry, user: str) -> tuple[asyncio.Event, list[str]]:
    """Make ``user``'s sign-in hold its turn (in the last hook) until the event is set;
    the list records every user whose sign-in reached that hook."""
    hold = asyncio.Event()
    reached: list[str] = []
    snapshot = gateway.signed_in
    assert snapshot is not None

    async def held(conn: Connection) -> None:
        reached.append(conn.principal.user)
        if conn.principal.user == user:
            await hold.wait()
        await snapshot(conn)

    gateway.signed_in = held
    return hold, reached


async def test_sign_ins_past_the_limit_wait_their_turn(app_client):
    client = await app_client(signin_concurrency=1)
    alice, bob = await account(client), await account(client)
    gateway = registry(client)
    hold, _ = _hold_sign_in(gateway, alice.id)  # Alice holds the only turn until released
    first = await connect(client, alice.token)  # her auth result comes before the hooks
    second = await client.ws_connect("/chat/ws")
    await second.send_json({"id": 1, "type": "auth", "token": bob.token})
    with pytest.raises(asyncio.TimeoutError):
        await second.receive(timeout=0.5)  # Bob waits: not even his token is checked yet
    assert gateway.signing_in.waiting == 1
    assert not gateway.online(bob.id)
    hold.set()
    assert (await recv(second))["result"] == {"user": bob.id}
    assert gateway.signing_in.waiting == 0
    assert (await recv_after(first, {"id": 2, "type": "ping"}))["success"]
    assert gateway.online(bob.id)


async def test_a_socket_gone_while_waiting_its_turn_is_never_signed_in(app_client):
    client = await app_client(signin_concurrency=1)
    alice, bob = await account(client), await account(client)
    gateway = registry(client)
    hold, signed_in = _hold_sign_in(gateway, alice.id)
    await connect(client, alice.token)
    # The client gives up on the close handshake at once: the server reads nothing while
    # the socket waits its turn, so it could not answer one.
    gone = await client.ws_connect("/chat/ws", timeout=aiohttp.ClientWSTimeout(ws_close=0.1))
    await gone.send_json({"id": 1, "type": "auth", "token": bob.token})
    for _ in range(100):
        if gateway.signing_in.waiting:
            break
        await asyncio.sleep(0.01)
    assert gateway.signing_in.waiting == 1
    await gone.close()
    await asyncio.sleep(0.2)  # the server has seen the close
    hold.set()
    for _ in range(100):
        if gateway.signing_in.waiting == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert signed_in == [alice.id]  # Bob's token was never checked, no hook ran for him
    assert not gateway.online(bob.id)
