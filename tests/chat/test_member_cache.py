"""The member cache: the membership check of sends and the recipients of pushes, current
across chat nodes.

Units on the in-process doorbell (hits, invalidation, the read that overlaps a change, the
ttl, a change under way, the subscription's life), then two real chat nodes in cluster mode:
a member removed through one node can no longer send through the other, at once, and gets
no push of what is sent after the removal.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Collection

import pytest

from backend.chat.member_cache import CHANGING, GRACE, MEMBERSHIP_CHANNEL, MemberCache
from backend.common.auth_guard import SESSION_ENDED_CHANNEL
from backend.common.metrics import parse_samples
from backend.common.typedefs import CHAT_RUNTIME
from backend.stores.ephemeral.memory import MemoryDoorbell
from backend.stores.ephemeral.port import Resync, Ring
from tests.auth.device_keys import TestDevice
from tests.chat.social_world import World, make_world
from tests.chat.ws_helpers import connect, recv

CLUSTER = pytest.param(
    "cluster",
    marks=[pytest.mark.mariadb, pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.mongo],
)


class Store:
    """Room members as the relational store would answer, counting the reads."""

    def __init__(self, rooms: dict[str, set[str]]) -> None:
        self.rooms = rooms
        self.loads = 0
        self.checks = 0
        self.gate: asyncio.Event | None = None
        """When set, a load waits for it (to change the room while it reads)."""

    async def load(self, room: str) -> Collection[str]:
        self.loads += 1
        members = set(self.rooms.get(room, set()))
        if self.gate is not None:
            await self.gate.wait()
        return members

    async def check(self, room: str, user: str) -> bool:
        self.checks += 1
        return user in self.rooms.get(room, set())

    async def load_rooms(self, rooms: Collection[str]) -> dict[str, Collection[str]]:
        self.loads += 1
        return {room: set(self.rooms.get(room, set())) for room in rooms}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def new_cache(store: Store, *, ttl: float = 5.0, clock: Clock | None = None, **kw) -> MemberCache:
    return MemberCache(
        store.load, store.check, store.load_rooms, ttl=ttl, clock=clock or Clock(), **kw
    )


def live_cache(store: Store, *, ttl: float = 5.0, clock: Clock | None = None) -> MemberCache:
    cache = new_cache(store, ttl=ttl, clock=clock)
    cache.live = True  # as after the subscription's first Resync, its grace over
    return cache


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition`` holds (``what`` it means, for the failure)."""
    try:
        async with asyncio.timeout(5):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"not within 5 s: {what}")


async def test_a_room_is_read_once_then_answered_from_memory():
    store = Store({"r": {"alice", "bob"}})
    cache = live_cache(store)
    assert [await cache.is_member("r", u) for u in ("alice", "bob", "carol", "alice")] == [
        True,
        True,
        False,
        True,
    ]
    assert (store.loads, store.checks) == (1, 0)
    assert (cache.hits, cache.misses) == (3, 1)


async def test_off_and_not_live_it_asks_the_store_every_time():
    store = Store({"r": {"alice"}})
    off = live_cache(store, ttl=0)
    not_live = new_cache(store)
    for cache in (off, not_live, off, not_live):
        assert await cache.is_member("r", "alice")
    assert (store.loads, store.checks) == (0, 4)
    assert (off.misses + not_live.misses, off.hits + not_live.hits) == (4, 0)


async def test_a_change_is_seen_at_once_and_the_ttl_bounds_a_missed_one():
    clock = Clock()
    store = Store({"r": {"alice", "bob"}})
    cache = live_cache(store, clock=clock)
    assert await cache.is_member("r", "bob")
    store.rooms["r"].discard("bob")
    await cache.changed(["r"])  # what RoomService does after the commit
    assert not await cache.is_member("r", "bob")
    store.rooms["r"].add("bob")  # a change whose ring never came
    clock.now += 4.9
    assert not await cache.is_member("r", "bob"), "within the ttl, the entry stands"
    clock.now += 0.2
    assert await cache.is_member("r", "bob"), "past the ttl, the room is read again"
    assert store.loads == 3


async def test_a_read_overlapping_a_change_is_not_kept_nor_joined_after_it():
    store = Store({"r": {"alice", "bob"}})
    cache = live_cache(store)
    store.gate = asyncio.Event()
    before = asyncio.ensure_future(cache.is_member("r", "bob"))  # reads {alice, bob}
    await until(lambda: store.loads == 1, "the first read began")
    store.rooms["r"].discard("bob")
    cache.invalidate("r")  # Bob removed while that read was on its way
    after = asyncio.ensure_future(cache.is_member("r", "bob"))
    await until(lambda: store.loads == 2, "a check after the change reads again")
    store.gate.set()
    assert await before is True, "the old read answers the check that began before the change"
    assert await after is False, "a check after the change never joins the old read"
    store.gate = None
    assert not await cache.is_member("r", "bob")
    assert store.loads == 2, "the read that began after the change was kept"


async def test_concurrent_checks_of_a_room_share_one_read():
    store = Store({"r": {"alice", "bob"}})
    cache = live_cache(store)
    store.gate = asyncio.Event()
    checks = [asyncio.ensure_future(cache.is_member("r", u)) for u in ("alice", "bob", "eve")]
    await until(lambda: store.loads == 1, "one read")
    store.gate.set()
    assert await asyncio.gather(*checks) == [True, True, False]
    assert store.loads == 1


async def test_the_least_recently_used_room_goes_first():
    store = Store({f"r{i}": {"alice"} for i in range(3)})
    cache = new_cache(store, max_rooms=2)
    cache.live = True
    for room in ("r0", "r1", "r0", "r2"):  # r1 is the least recently used when r2 comes
        await cache.is_member(room, "alice")
    await cache.is_member("r0", "alice")
    await cache.is_member("r1", "alice")
    assert store.loads == 4


async def follow(cache: MemberCache, bell: MemoryDoorbell) -> None:
    """What the fan-out does for the cache: feed it its subscription's items, in order."""
    try:
        async for item in bell.subscribe(MEMBERSHIP_CHANNEL, SESSION_ENDED_CHANNEL):
            cache.follow(item)
    finally:
        cache.stopped()


async def test_rings_from_another_node_and_ended_sessions_drop_entries():
    bell, clock = MemoryDoorbell(), Clock()
    store = Store({"r": {"alice", "bob"}, "s": {"alice"}})
    here, there = new_cache(store, ttl=60.0, clock=clock), new_cache(store, ttl=60.0, clock=clock)
    assert not here.live
    async with here.running(bell), there.running(bell), asyncio.TaskGroup() as tasks:
        pumps = [tasks.create_task(follow(cache, bell)) for cache in (here, there)]
        await until(lambda: here.live and there.live, "both subscribed")
        assert await here.is_member("r", "alice")
        assert "r" not in here._rooms, "nothing is kept in the grace after subscribing"
        clock.now += GRACE
        for room in ("r", "s"):
            await here.is_member(room, "alice")
        assert (store.checks, store.loads) == (1, 2)
        store.rooms["r"].discard("bob")
        await there.changed(["r"])  # the change was made through the other node
        await until(lambda: not here._rooms.get("r"), "the ring arrived")
        assert not await here.is_member("r", "bob")
        assert await here.is_member("s", "alice"), "other rooms stay"
        assert store.loads == 3
        await bell.ring(SESSION_ENDED_CHANNEL, b"some-session")
        await until(lambda: not here._rooms, "an ended session drops everything")
        await bell.ring(MEMBERSHIP_CHANNEL, b"\xff")  # nonsense names no room: harmless
        for pump in pumps:
            pump.cancel()
    assert not here.live, "stopped: every check goes to the store again"


async def test_a_room_whose_change_is_under_way_is_read_every_time_until_it_is_done():
    bell, clock = MemoryDoorbell(), Clock()
    store = Store({"r": {"alice", "bob"}})
    here, there = new_cache(store, clock=clock), new_cache(store, clock=clock)
    async with here.running(bell), there.running(bell), asyncio.TaskGroup() as tasks:
        pump = tasks.create_task(follow(here, bell))
        await until(lambda: here.live, "subscribed")
        clock.now += GRACE
        assert (await here.members_of_rooms(["r"]))["r"] == {"alice", "bob"}
        await there.changing("r")  # inside the other node's transaction, before its commit
        await until(lambda: "r" not in here._rooms, "the changing ring arrived")
        loads = store.loads
        for _ in range(3):  # before and after the commit: each read, none kept
            assert await here.is_member("r", "bob") == ("bob" in store.rooms["r"])
            assert (await here.members_of_rooms(["r"]))["r"] == store.rooms["r"]
            store.rooms["r"].discard("bob")  # the commit
        assert store.loads - loads + store.checks == 6
        await there.changed(["r"])  # after the commit
        await until(lambda: "r" not in here._unsettled, "the changed ring arrived")
        assert (await here.members_of_rooms(["r"]))["r"] == {"alice"}
        assert not await here.is_member("r", "bob")
        assert store.loads - loads + store.checks == 7, "kept again once the change is done"
        # A change whose "changed" ring is lost: the room is read again for a ttl at most.
        await there.changing("r")
        await until(lambda: "r" in here._unsettled, "the changing ring arrived")
        await here.members_of_rooms(["r"])
        await here.members_of_rooms(["r"])
        assert store.loads - loads + store.checks == 9
        clock.now += 5.0
        await here.members_of_rooms(["r"])
        await here.members_of_rooms(["r"])
        assert store.loads - loads + store.checks == 10, "past the ttl it is kept again"
        pump.cancel()


async def test_rooms_whose_changed_ring_was_lost_do_not_pile_up():
    clock = Clock()
    cache = new_cache(Store({}), clock=clock, max_rooms=2)
    for room in ("a", "b", "c"):
        cache.follow(Ring(MEMBERSHIP_CHANNEL, CHANGING + room.encode()))  # no "changed" follows
    clock.now += 5.0
    cache.follow(Ring(MEMBERSHIP_CHANNEL, CHANGING + b"d"))
    assert set(cache._unsettled) == {"d"}, "the lapsed ones went once there were too many"


async def test_the_push_lookup_reads_what_is_not_kept_at_once_and_keeps_no_empty_room():
    store = Store({"r": {"alice"}, "s": {"bob"}})
    cache = live_cache(store)
    assert await cache.members_of_rooms(["r"]) == {"r": {"alice"}}
    assert await cache.members_of_rooms(["r", "s", "nowhere"]) == {
        "r": {"alice"},
        "s": {"bob"},
        "nowhere": frozenset(),
    }
    assert store.loads == 2, "one read for s and nowhere together"
    store.rooms["nowhere"] = {"carol"}  # created since: its empty answer was not kept
    assert await cache.members_of_rooms(["r", "s", "nowhere"]) == {
        "r": {"alice"},
        "s": {"bob"},
        "nowhere": {"carol"},
    }
    assert store.loads == 3
    assert (cache.hits, cache.misses) == (3, 4)


async def test_a_doorbell_that_fails_to_ring_is_counted_and_the_change_stays_local():
    class Broken(MemoryDoorbell):
        async def ring(self, channel: str, payload: bytes) -> None:
            raise ConnectionError("redis is down")

    store = Store({"r": {"alice"}})
    cache = live_cache(store)
    async with cache.running(Broken()):
        cache.live = True
        assert await cache.is_member("r", "alice")
        store.rooms["r"].clear()
        await cache.changed(["r"])
        assert not await cache.is_member("r", "alice")
    assert cache.ring_failures == 1


async def test_a_change_rings_changing_inside_its_transaction_and_changed_after(
    aiohttp_client, settings
):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    runtime = world.client.app[CHAT_RUNTIME]
    store = runtime.social.rooms.store
    heard: list[bytes] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async for item in runtime.stores.doorbell.subscribe(MEMBERSHIP_CHANNEL):
            if isinstance(item, Resync):
                subscribed.set()
            else:
                heard.append(item.payload)

    committed: list[bool] = []
    rung = store.before_commit

    async def before_commit(room_id: str) -> None:
        # Another connection still sees Bob: the transaction has not committed yet.
        committed.append(await store.member(room_id, bob.id) is None)
        await rung(room_id)

    store.before_commit = before_commit
    async with asyncio.TaskGroup() as tasks:
        listener = tasks.create_task(listen())
        await subscribed.wait()
        await alice.call("POST", f"/rooms/{room}/kick", {"user": bob.id})
        await until(lambda: len(heard) == 2, "both rings")
        listener.cancel()
    assert heard == [CHANGING + room.encode(), room.encode()]
    assert committed == [False]


@pytest.mark.parametrize("make_settings", [CLUSTER], indirect=True)
async def test_a_member_kicked_through_one_node_cannot_send_through_the_other(app_client):
    one, two = await app_client(), await app_client()
    world = World(one)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    dev = TestDevice(bob.id)
    r = await one.post("/auth/devices", json=dev.registration(), headers=bob.auth)
    assert r.status == 201, await r.text()
    ws = await connect(two, bob.token, device=dev.device_id)  # Bob sends through node two

    async def send(n: int) -> dict[str, object]:
        frame = {"id": n, "type": "send", "msg_id": uuid.uuid4().hex, "room": room}
        await ws.send_json({**frame, "ciphertext": "ct"})
        while (reply := await recv(ws)).get("id") != n:
            pass
        return reply

    cache = two.app[CHAT_RUNTIME].social.members_cache
    await until(
        lambda: cache.live and time.monotonic() >= cache._keep_from, "node two keeps members"
    )
    assert (await send(2))["success"], "a member sends"
    assert (await send(3))["success"], "and again, now from node two's cache"
    assert cache.hits >= 1
    await alice.call("POST", f"/rooms/{room}/kick", {"user": bob.id})  # through node one
    await until(lambda: room not in cache._rooms, "the kick's ring reached node two")
    reply = await send(4)
    assert not reply["success"] and reply["error"]["code"] == "not_member"  # type: ignore[index]
    await ws.close()
    r = await two.get("/chat/metrics")
    samples = parse_samples(await r.text())["sealchat_chat_member_checks_total"]
    checks = {labels["source"]: n for labels, n in samples}
    assert checks["cache"] >= 1 and checks["database"] >= 2, checks  # before and after the kick
