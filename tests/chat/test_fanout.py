"""The fan-out handles the rings waiting on the doorbell in batches, with one member lookup
per batch: every member still gets each message once, in ring order, and a member removed
before the rings gets none of them ("Membership at push time", docs/protocol.md)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete

from backend.chat.fanout import TO_DEVICE_CHANNEL
from backend.chat.history import commit_channel, committed_ring
from backend.chat.member_cache import CHANGING, MEMBERSHIP_CHANNEL
from backend.chat.pipeline import partition_of
from backend.common.typedefs import CHAT_RUNTIME
from backend.stores.documents.port import StoredMessage
from backend.stores.ephemeral.inbox import OVERFLOW, Inbox
from backend.stores.ephemeral.memory import MemoryDoorbell
from backend.stores.ephemeral.port import Ring
from backend.stores.relational.schema import room_members
from tests.chat.social_world import make_world
from tests.chat.test_messaging import Peer, device_socket, msg_id

RINGS_PER_ROOM = 40


def ring_of(room: str, seq: int, sender: str, partitions: int) -> tuple[str, bytes]:
    message = StoredMessage(
        room=room,
        seq=seq,
        msg_id=msg_id(),
        sender=sender,
        device="device1",
        ts=datetime.now(UTC),
        ciphertext=f"ct-{seq}",
    )
    return commit_channel(partition_of(room, partitions)), committed_ring(message)


async def messages(peer: Peer, count: int) -> list[tuple[str, int]]:
    got = [await peer.next_of("message") for _ in range(count)]
    return [(m["room"], m["seq"]) for m in got]


async def nothing_more(peer: Peer) -> list[dict[str, Any]]:
    """Frames that arrive before the answer to a ping (what was pushed and not yet read)."""
    await peer.request({"id": 99, "type": "ping"})
    return [f for f in peer.backlog if f["type"] == "message"]


async def test_a_batch_of_rings_reaches_each_member_once_in_order(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob, carol = await world.person(), await world.person(), await world.person()
    first = await world.group(alice, bob, carol, name="first")
    second = await world.group(alice, bob, name="second")
    await alice.call("POST", f"/rooms/{first}/kick", {"user": carol.id})
    a, b, c = [await device_socket(world, p) for p in (alice, bob, carol)]

    runtime = world.client.app[CHAT_RUNTIME]
    fanout = runtime.fanout
    partitions = runtime.intake.partitions
    rings = []
    for seq in range(1, RINGS_PER_ROOM + 1):
        rings.append(ring_of(first, seq, alice.id, partitions))
        rings.append(ring_of(second, seq, bob.id, partitions))
    batches_before = fanout.batches
    doorbell = runtime.stores.doorbell
    for channel, payload in rings:  # rung back to back: they wait in the inbox together
        await doorbell.ring(channel, payload)

    expected = [(room, seq) for seq in range(1, RINGS_PER_ROOM + 1) for room in (first, second)]
    for peer in (a, b):
        async with asyncio.timeout(30):
            assert await messages(peer, len(expected)) == expected
        assert await nothing_more(peer) == []
    # Carol was removed from the first room before its messages were rung.
    assert await nothing_more(c) == []
    if isinstance(doorbell, MemoryDoorbell):
        # In process every ring is waiting before the fan-out runs: one lookup for them all.
        assert fanout.batches - batches_before < len(rings)
    for peer in (a, b, c):
        await peer.close()


async def test_a_removal_rung_changing_is_heard_before_the_next_message_also_when_cached(
    aiohttp_client, settings
):
    """Another node removes Carol: it rings ``changing`` inside its transaction, commits, and
    its ``changed`` ring is late. A message committed after the removal is rung after
    ``changing``, so the fan-out reads the members again instead of its kept list."""
    world = await make_world(aiohttp_client, settings)
    alice, bob, carol = await world.person(), await world.person(), await world.person()
    room = await world.group(alice, bob, carol)
    a, b, c = [await device_socket(world, p) for p in (alice, bob, carol)]
    runtime = world.client.app[CHAT_RUNTIME]
    cache, doorbell = runtime.social.members_cache, runtime.stores.doorbell
    partitions = runtime.intake.partitions
    async with asyncio.timeout(30):
        while not (cache.live and time.monotonic() >= cache._keep_from):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the grace after the fan-out subscribed
        await doorbell.ring(*ring_of(room, 1, alice.id, partitions))
        for peer in (a, b, c):
            assert await messages(peer, 1) == [(room, 1)]
        assert carol.id in cache._rooms[room][1], "the members are kept"

        await doorbell.ring(MEMBERSHIP_CHANNEL, CHANGING + room.encode())
        async with runtime.social.rooms.store.engine.begin() as conn:  # the other node's commit
            await conn.execute(
                delete(room_members).where(
                    room_members.c.room_id == room, room_members.c.user_id == carol.id
                )
            )
        await doorbell.ring(*ring_of(room, 2, alice.id, partitions))
        for peer in (a, b):
            assert await messages(peer, 1) == [(room, 2)]
    assert await nothing_more(c) == [], "nothing committed after the removal reaches Carol"
    for peer in (a, b, c):
        await peer.close()


async def test_malformed_and_to_device_rings_in_a_batch_spoil_nothing(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a = await device_socket(world, alice)
    runtime = world.client.app[CHAT_RUNTIME]
    partitions = runtime.intake.partitions
    doorbell = runtime.stores.doorbell
    channel = commit_channel(partition_of(room, partitions))
    await doorbell.ring(channel, b"{not json")
    await doorbell.ring(channel, b'{"type": "committed", "room": 5}')
    await doorbell.ring(TO_DEVICE_CHANNEL, b'{"user": "nobody"}')
    for seq in (1, 2):
        await doorbell.ring(*ring_of(room, seq, bob.id, partitions))
    async with asyncio.timeout(30):
        assert await messages(a, 2) == [(room, 1), (room, 2)]
    assert await nothing_more(a) == []
    await a.close()


async def test_the_inbox_hands_over_what_waits_without_waiting() -> None:
    inbox = Inbox(3)
    rings = [Ring("c", str(n).encode()) for n in range(5)]
    assert inbox.take(5) == []
    inbox.put(rings[0])
    inbox.put(rings[1])
    assert inbox.take(1) == [rings[0]]
    assert inbox.take(5) == [rings[1]]
    for ring in rings[2:]:
        inbox.put(ring)
    inbox.put(rings[0])  # full: the backlog is traded for one Resync, then this ring
    assert inbox.take(5) == [OVERFLOW, rings[0]]
    inbox.put(rings[1])
    inbox.end()
    assert inbox.take(5) == [rings[1]]
    assert await inbox.get() is None
