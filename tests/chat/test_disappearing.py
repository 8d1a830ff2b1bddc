"""Disappearing messages: ``ttl`` on send, ``expires_at`` on delivery, a tombstone afterwards."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta

from tests.chat.social_world import make_world
from tests.chat.test_messaging import device_socket, msg_id
from tests.chat.ws_helpers import with_chat


async def test_a_message_with_ttl_expires_into_a_tombstone_that_keeps_its_seq(
    aiohttp_client, settings
):
    world = await make_world(aiohttp_client, with_chat(settings, expiry_sweep_seconds=0.2))
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a, b = await device_socket(world, alice), await device_socket(world, bob)

    short = {"type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "soon", "ttl": 5}
    keep = {"type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "kept"}
    assert (await a.request({"id": 2, **short}))["success"]
    assert (await a.request({"id": 3, **keep}))["success"]
    first = await b.next_of("message")
    assert first["msg_id"] == short["msg_id"] and first["ciphertext"] == "soon"
    ts = datetime.fromisoformat(first["ts"])
    assert datetime.fromisoformat(first["expires_at"]) - ts == timedelta(seconds=5)
    assert "expires_at" not in await b.next_of("message")

    # The sweep runs every 0.2 s here; the message is 5 s long-lived.
    async with asyncio.timeout(20):
        for rid in itertools.count(10):
            reply = await b.request({"id": rid, "type": "history", "room": room, "after": 0})
            assert reply["success"], reply
            messages = reply["result"]["messages"]
            if messages[0]["kind"] == "expired":
                break
            await asyncio.sleep(0.5)
    gone, kept = messages
    assert gone["seq"] == 1 and gone["ciphertext"] == "" and gone["msg_id"] == short["msg_id"]
    assert kept["ciphertext"] == "kept" and kept["seq"] == 2
    # A new message continues the seq: the expired one did not give its number back.
    nxt = {"id": 100, "type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "next"}
    assert (await a.request(nxt))["success"]
    while (m := await b.next_of("message"))["msg_id"] != nxt["msg_id"]:
        pass
    assert m["seq"] == 3
    await a.close()
    await b.close()


async def test_bad_ttls_and_the_reserved_kind_are_refused(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice = await world.person()
    room = await world.group(alice)
    a = await device_socket(world, alice)
    base = {"type": "send", "room": room, "ciphertext": "x"}
    for n, extra in enumerate(
        [{"ttl": 4}, {"ttl": 366 * 86400}, {"ttl": "5"}, {"kind": "expired"}], start=2
    ):
        reply = await a.request({"id": n, "msg_id": msg_id(), **base, **extra})
        assert not reply["success"] and reply["error"]["code"] == "bad_frame", extra
    await a.close()
