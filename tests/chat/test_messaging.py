"""The whole message path with real sockets: send → queue → archiver → doorbell → members.

Runs in the embedded mode and against the real servers (RabbitMQ, MongoDB-compatible
server, Redis, MariaDB), with the archiver in the same process as ``sealchatd all`` runs it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from backend.common.typedefs import AUTH_SERVICE
from tests.auth.device_keys import TestDevice
from tests.chat.social_world import PASSWORD, Person, World, make_world
from tests.chat.ws_helpers import closed_with, connect, recv

STEP = 10.0


class Peer:
    """One client socket that keeps every frame it has not been asked for yet."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []
        self.device: TestDevice | None = None

    async def _take(self, match: Any) -> dict[str, Any]:
        for i, frame in enumerate(self.backlog):
            if match(frame):
                return self.backlog.pop(i)
        async with asyncio.timeout(STEP):
            while True:
                frame = await recv(self.ws)
                if match(frame):
                    return frame
                self.backlog.append(frame)

    async def next_of(self, kind: str) -> dict[str, Any]:
        """The next frame of type ``kind``; others stay in the backlog."""
        return await self._take(lambda f: f["type"] == kind)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send_json(frame)
        return await self._take(lambda f: f["type"] == "result" and f.get("id") == frame["id"])

    async def close(self) -> None:
        await self.ws.close()


async def device_socket(world: World, who: Person, dev: TestDevice | None = None) -> Peer:
    """A socket signed in with a device of ``who`` (registered first when new)."""
    if dev is None:
        dev = TestDevice(who.id)
        r = await world.client.post("/auth/devices", json=dev.registration(), headers=who.auth)
        assert r.status == 201, await r.text()
    peer = Peer(await connect(world.client, who.token, device=dev.device_id))
    peer.device = dev
    return peer


async def closed_with_patience(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Wait (without a per-frame limit) until the server closes; the close code."""
    while True:
        msg = await ws.receive()
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            return ws.close_code


def msg_id() -> str:
    return uuid.uuid4().hex


async def test_a_message_reaches_every_member_once_in_order_and_is_in_history(
    aiohttp_client, settings
):
    world = await make_world(aiohttp_client, settings)
    alice, bob, carol = await world.person(), await world.person(), await world.person()
    room = await world.group(alice, bob)
    a, b, c = [await device_socket(world, p) for p in (alice, bob, carol)]

    ids = [msg_id() for _ in range(5)]
    for n, mid in enumerate(ids, start=2):
        send = {"id": n, "type": "send", "msg_id": mid, "room": room, "ciphertext": f"ct-{n}"}
        reply = await a.request(send)
        assert reply["success"] and reply["result"] == {"msg_id": mid, "accepted": True}

    for ws in (a, b):
        got = [await ws.next_of("message") for _ in ids]
        assert [m["msg_id"] for m in got] == ids
        assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
        assert got[0]["sender"] == alice.id and got[0]["ciphertext"] == "ct-2"

    # Carol is not a member: her send is refused and she was pushed nothing.
    reply = await c.request(
        {"id": 2, "type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "x"}
    )
    assert not reply["success"] and reply["error"]["code"] == "not_member"
    reply = await c.request({"id": 3, "type": "history", "room": room})
    assert reply["error"]["code"] == "not_member"

    reply = await b.request({"id": 2, "type": "history", "room": room, "after": 3})
    assert [m["seq"] for m in reply["result"]["messages"]] == [4, 5]
    reply = await b.request({"id": 3, "type": "history", "room": room, "limit": 2})
    assert [m["seq"] for m in reply["result"]["messages"]] == [4, 5]
    reply = await b.request({"id": 4, "type": "sync"})
    assert reply["result"]["rooms"] == {room: 5}
    for ws in (a, b, c):
        await ws.close()


async def test_a_resend_after_reconnect_is_stored_and_shown_once(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a, b = await device_socket(world, alice), await device_socket(world, bob)
    mid = msg_id()
    frame = {"type": "send", "msg_id": mid, "room": room, "ciphertext": "once"}
    assert (await a.request({"id": 2, **frame}))["success"]
    assert (await a.request({"id": 3, **frame}))["success"], "a resend is accepted again"
    first = await b.next_of("message")
    after = {"id": 5, "type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "next"}
    assert (await a.request(after))["success"]
    # Whatever the doorbell rang twice, the second message is seq 2: the resend took no seq.
    seqs = [first["seq"]]
    while seqs[-1] != 2:
        seqs.append((await b.next_of("message"))["seq"])
    assert seqs[0] == 1 and 2 in seqs
    reply = await b.request({"id": 2, "type": "history", "room": room, "after": 0})
    assert [m["msg_id"] for m in reply["result"]["messages"]] == [mid, after["msg_id"]]
    await a.close()
    await b.close()


async def test_typing_is_throttled_and_a_stop_follows_only_a_shown_start(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a, b = await device_socket(world, alice), await device_socket(world, bob)
    sent = []
    for n, active in enumerate([True, True, True, False, False], start=2):
        reply = await a.request({"id": n, "type": "typing", "room": room, "active": active})
        sent.append(reply["result"]["sent"])
    assert sent == [True, False, False, True, False]
    assert await b.next_of("typing") == {
        "type": "typing",
        "room": room,
        "user": alice.id,
        "active": True,
    }
    assert (await b.next_of("typing"))["active"] is False
    assert not [f for f in b.backlog if f["type"] == "typing"]
    await a.close()
    await b.close()


async def test_read_markers_persist_move_forward_only_and_reach_the_others(
    aiohttp_client, settings
):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a, b = await device_socket(world, alice), await device_socket(world, bob)
    for n in range(2, 5):
        send = {"id": n, "type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "ct"}
        assert (await a.request(send))["success"]
    while (await b.next_of("message"))["seq"] != 3:
        pass

    reply = await b.request({"id": 2, "type": "read", "room": room, "seq": 2})
    assert reply["result"] == {"room": room, "seq": 2}
    assert await a.next_of("read") == {"type": "read", "room": room, "user": bob.id, "seq": 2}
    # Backwards changes nothing; beyond the newest message stops at the newest.
    assert (await b.request({"id": 3, "type": "read", "room": room, "seq": 1}))["result"][
        "seq"
    ] == 2
    assert (await b.request({"id": 4, "type": "read", "room": room, "seq": 99}))["result"][
        "seq"
    ] == 3
    assert (await a.next_of("read"))["seq"] == 3
    assert not [f for f in a.backlog if f["type"] == "read"], "no event for a no-op"

    r = await world.client.get("/chat/rooms", headers=bob.auth)
    [summary] = [s for s in (await r.json())["rooms"] if s["id"] == room]
    assert summary["read_seq"] == 3
    r = await world.client.get("/chat/rooms", headers=alice.auth)
    assert [s["read_seq"] for s in (await r.json())["rooms"] if s["id"] == room] == [0]
    await a.close()
    await b.close()


async def test_sending_needs_a_registered_device(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    ws = Peer(await connect(world.client, alice.token))
    reply = await ws.request(
        {"id": 2, "type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "x"}
    )
    assert reply["error"]["code"] == "invalid" and "device" in reply["error"]["message"]
    await ws.close()


async def test_to_device_messages_wait_for_their_device_until_acked(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob, carol = await world.person(), await world.person(), await world.person()
    a = await device_socket(world, alice)
    b = await device_socket(world, bob)
    bob_device = b.device
    live = {
        "id": 2,
        "type": "send_to_device",
        "user": bob.id,
        "device": bob_device.device_id,
        "msg_id": msg_id(),
        "ciphertext": "olm-1",
    }
    assert (await a.request(live))["result"] == {"id": live["msg_id"], "queued": True}
    got = await b.next_of("to_device")
    assert (got["id"], got["sender"], got["ciphertext"]) == (live["msg_id"], alice.id, "olm-1")
    assert got["sender_device"] == a.device.device_id
    await b.close()

    away = {**live, "id": 3, "msg_id": msg_id(), "ciphertext": "olm-2"}
    assert (await a.request(away))["success"]
    # Reconnecting without having acked: both are handed over again, oldest first.
    b = await device_socket(world, bob, bob_device)
    ids = [(await b.next_of("to_device"))["id"] for _ in range(2)]
    assert ids == [live["msg_id"], away["msg_id"]]

    c = await device_socket(world, carol)
    reply = await c.request({"id": 2, "type": "ack_to_device", "ids": ids})
    assert reply["result"] == {"acked": 0}, "carol cannot ack bob's messages"
    reply = await b.request({"id": 2, "type": "ack_to_device", "ids": ids})
    assert reply["result"] == {"acked": 2}
    await b.close()
    b = await device_socket(world, bob, bob_device)
    reply = await b.request({"id": 2, "type": "ping"})
    assert reply["success"] and not [f for f in b.backlog if f["type"] == "to_device"]

    unknown = {**live, "id": 4, "device": "NODEVICE1", "msg_id": msg_id()}
    assert (await a.request(unknown))["error"]["code"] == "not_found"
    for peer in (a, b, c):
        await peer.close()


async def test_logout_closes_the_sessions_open_sockets_and_no_other(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice = await world.person()
    ended = await connect(world.client, alice.token)
    r = await world.client.post("/auth/login", json={"id": alice.id, "passwd": PASSWORD})
    other = Peer(await connect(world.client, (await r.json())["token"]))
    r = await world.client.post("/auth/logout", headers=alice.auth)
    assert r.status == 200
    assert await closed_with(ended) == 4001
    reply = await other.request({"id": 2, "type": "ping"})
    assert reply["success"], "the user's other session keeps its socket"
    await other.close()


async def test_a_socket_does_not_outlive_its_token(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice = await world.person()
    issuer = world.client.app[AUTH_SERVICE].issuer
    # Expired 55 s ago: still inside the 60 s leeway, so it signs in, for about 5 s more.
    token, _ = issuer.issue(
        sub=alice.id,
        sid="s" * 32,
        role="user",
        audiences=["chat"],
        now=time.time() - issuer.ttl_seconds - 55,
    )
    ws = await connect(world.client, token)
    async with asyncio.timeout(15):
        assert await closed_with_patience(ws) == 4001
