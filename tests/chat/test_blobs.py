"""Encrypted attachments over HTTP: members upload and download, everyone else finds nothing."""

from __future__ import annotations

import hashlib
import os

from backend.common.typedefs import CHAT_RUNTIME
from tests.chat.social_world import make_world
from tests.chat.test_messaging import device_socket, msg_id
from tests.chat.ws_helpers import with_chat


async def test_members_upload_and_download_byte_for_byte(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob, carol = await world.person(), await world.person(), await world.person()
    room = await world.group(alice, bob)
    data = os.urandom(600_000)

    r = await world.client.post(f"/chat/blobs?room={room}", data=data, headers=alice.auth)
    assert r.status == 201, await r.text()
    out = await r.json()
    assert out["room"] == room and out["size"] == len(data)
    assert out["sha256"] == hashlib.sha256(data).hexdigest()
    assert out["blob"].startswith("b_")

    r = await world.client.get(f"/chat/blobs/{out['blob']}", headers=bob.auth)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["X-Content-SHA256"] == out["sha256"]
    assert await r.read() == data

    # Not a member: the blob and the room do not exist for carol.
    r = await world.client.get(f"/chat/blobs/{out['blob']}", headers=carol.auth)
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await world.client.post(f"/chat/blobs?room={room}", data=b"x", headers=carol.auth)
    assert r.status == 404
    # Once bob leaves, he cannot fetch it any more.
    await bob.call("POST", f"/rooms/{room}/leave", {"confirm": True})
    r = await world.client.get(f"/chat/blobs/{out['blob']}", headers=bob.auth)
    assert r.status == 404


async def test_bad_requests_get_clear_errors(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice = await world.person()
    room = await world.group(alice)
    r = await world.client.post("/chat/blobs", data=b"x", headers=alice.auth)
    assert r.status == 422 and "room" in (await r.json())["error"]["message"]
    r = await world.client.post("/chat/blobs?room=nope", data=b"x", headers=alice.auth)
    assert r.status == 422
    r = await world.client.post(f"/chat/blobs?room={room}", data=b"x")
    assert r.status == 401
    for bad in ("nope", "b_" + "A" * 22, "../etc"):
        r = await world.client.get(f"/chat/blobs/{bad}", headers=alice.auth)
        assert r.status == 404, bad


async def test_an_upload_over_the_limit_is_refused_with_or_without_a_length(
    aiohttp_client, settings
):
    world = await make_world(aiohttp_client, with_chat(settings, max_blob_bytes=64 * 1024))
    alice = await world.person()
    room = await world.group(alice)
    big = os.urandom(64 * 1024 + 1)
    r = await world.client.post(f"/chat/blobs?room={room}", data=big, headers=alice.auth)
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"

    async def streamed():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 10_000):
            yield big[i : i + 10_000]

    r = await world.client.post(f"/chat/blobs?room={room}", data=streamed(), headers=alice.auth)
    assert r.status == 413


async def test_deleting_a_room_purges_its_messages_and_files(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a = await device_socket(world, alice)
    send = {"id": 2, "type": "send", "msg_id": msg_id(), "room": room, "ciphertext": "ct"}
    assert (await a.request(send))["success"]
    await a.next_of("message")
    r = await world.client.post(f"/chat/blobs?room={room}", data=b"file", headers=alice.auth)
    blob = (await r.json())["blob"]
    stores = world.client.app[CHAT_RUNTIME].stores
    assert await stores.documents.messages_after(room, 0, 10)

    await alice.call("DELETE", f"/rooms/{room}", {"confirm": True})
    assert await stores.documents.messages_after(room, 0, 10) == []
    assert await stores.blobs.info(blob) is None
    await a.close()
