"""The ephemeral ports' contract, run against every adapter: in-process memory and Redis.

Waits are bounded (``asyncio.timeout``) so a broken adapter fails instead of hanging, and
TTLs are one second, the shortest the port allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from backend.stores.ephemeral import Counter, Doorbell, KeyValue, Resync, Ring
from backend.stores.ephemeral.memory import MemoryDoorbell, MemoryKeyValue
from backend.stores.ephemeral.redis import RedisDoorbell, RedisKeyValue, open_redis

KINDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]
SUBSCRIBED = Resync("subscribed")
RECONNECTED = Resync("reconnected")
OVERFLOW = Resync("overflow")


def redis_slice(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The session's Redis URL and a key prefix for this test alone."""
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix") + uuid.uuid4().hex[:8] + ":"
    return url, prefix


@pytest.fixture(params=KINDS)
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KeyValue]:
    store: KeyValue
    store = MemoryKeyValue() if request.param == "memory" else RedisKeyValue(*redis_slice(request))
    try:
        yield store
    finally:
        await store.close()


OpenDoorbell = Callable[..., MemoryDoorbell | RedisDoorbell]


@pytest.fixture(params=KINDS)
async def open_doorbell(request: pytest.FixtureRequest) -> AsyncIterator[OpenDoorbell]:
    """Opens doorbells of one kind that share a namespace; all are closed afterwards."""
    opened: list[Doorbell] = []
    url, prefix = redis_slice(request) if request.param == "redis" else ("", "")

    def open_(**options: object) -> MemoryDoorbell | RedisDoorbell:
        bell: MemoryDoorbell | RedisDoorbell
        if request.param == "memory":
            bell = MemoryDoorbell(**options)  # type: ignore[arg-type]
        else:
            bell = RedisDoorbell(url, prefix, **options)  # type: ignore[arg-type]
        opened.append(bell)
        return bell

    try:
        yield open_
    finally:
        for bell in opened:
            await bell.close()


@pytest.fixture
def bell(open_doorbell: OpenDoorbell) -> MemoryDoorbell | RedisDoorbell:
    return open_doorbell()


@pytest.fixture
async def redis_admin(redis_url: str) -> AsyncIterator[Redis]:
    """A separate client for looking at (and breaking) what the adapters do."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def next_item(subscription: AsyncIterator[Ring | Resync], seconds: float = 5.0):
    async with asyncio.timeout(seconds):
        return await anext(subscription)


@contextlib.asynccontextmanager
async def subscribed(bell: Doorbell, *channels: str) -> AsyncIterator[AsyncIterator[Ring | Resync]]:
    """A live subscription (its first item, the Resync, already read), closed on exit."""
    subscription = bell.subscribe(*channels)
    try:
        assert await next_item(subscription) == SUBSCRIBED
        yield subscription
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


# --- key-value --------------------------------------------------------------------------


async def test_a_missing_counter_reads_as_zero(kv: KeyValue) -> None:
    assert await kv.counter("nothing-here") == Counter(0, 0)
    assert not await kv.has_flag("nothing-here")


async def test_incr_counts_from_one_and_expires(kv: KeyValue) -> None:
    assert [await kv.incr("hits", 1) for _ in range(3)] == [1, 2, 3]
    assert (await kv.counter("hits")).value == 3
    assert (await kv.counter("other")).value == 0

    async def gone() -> bool:
        return (await kv.counter("hits")).value == 0

    await eventually(gone, seconds=3)
    assert await kv.incr("hits", 1) == 1  # a new window starts from scratch


async def test_expiry_is_not_extended_by_later_incr(kv: KeyValue) -> None:
    start = time.monotonic()
    await kv.incr("window", 1)
    await asyncio.sleep(0.6)
    assert await kv.incr("window", 1) == 2

    async def gone() -> bool:
        return (await kv.counter("window")).value == 0

    # An extended window would last until start + 1.6 s; the fixed one ends at start + 1 s.
    await eventually(gone, seconds=max(0.0, start + 1.3 - time.monotonic()))


async def test_a_counter_reads_with_the_time_left_in_its_window(kv: KeyValue) -> None:
    await kv.incr("window", 60)
    await kv.incr("window", 60)
    counter = await kv.counter("window")
    assert counter.value == 2 and 59 <= counter.seconds_left <= 60
    await kv.incr("short", 1)

    async def gone() -> bool:
        return await kv.counter("short") == Counter(0, 0)

    await eventually(gone, seconds=3)
    await kv.delete("window")
    assert await kv.counter("window") == Counter(0, 0)


async def test_concurrent_increments_are_all_counted(kv: KeyValue) -> None:
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(kv.incr("busy", 60) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert (await kv.counter("busy")).value == 200


async def test_flag_is_present_until_it_expires(kv: KeyValue) -> None:
    await kv.set_flag("denied", 1)
    assert await kv.has_flag("denied")

    async def gone() -> bool:
        return not await kv.has_flag("denied")

    await eventually(gone, seconds=3)


async def test_set_flag_overwrites_the_earlier_expiry(kv: KeyValue) -> None:
    await kv.set_flag("denied", 1)
    await kv.set_flag("denied", 60)
    await asyncio.sleep(1.3)
    assert await kv.has_flag("denied")


async def test_delete_removes_keys_and_ignores_absent_ones(kv: KeyValue) -> None:
    await kv.set_flag("flag", 60)
    await kv.incr("count", 60)
    await kv.delete("flag", "count", "never-set")
    await kv.delete()
    assert not await kv.has_flag("flag")
    assert (await kv.counter("count")).value == 0


async def test_ttl_below_one_second_is_refused(kv: KeyValue) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        await kv.incr("k", 0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        await kv.set_flag("k", 0)
    assert (await kv.counter("k")).value == 0


async def test_memory_expiry_follows_the_injected_clock() -> None:
    now = [100.0]
    kv = MemoryKeyValue(clock=lambda: now[0])
    assert await kv.incr("k", 5) == 1
    now[0] = 104.9
    assert await kv.incr("k", 5) == 2
    assert await kv.counter("k") == Counter(2, 1)  # 0.1 s left, rounded up
    now[0] = 105.0
    assert (await kv.counter("k")).value == 0
    await kv.set_flag("f", 2)
    now[0] = 106.9
    assert await kv.has_flag("f")
    now[0] = 107.0
    assert not await kv.has_flag("f")


async def test_memory_time_left_is_never_more_than_the_window() -> None:
    now = [124.4]  # (124.4 + 900) - 124.4 is 900.0000000000001 in floating point
    kv = MemoryKeyValue(clock=lambda: now[0])
    await kv.incr("k", 900)
    assert await kv.counter("k") == Counter(1, 900)


async def test_memory_sweep_drops_expired_keys_never_touched_again() -> None:
    now = [0.0]
    kv = MemoryKeyValue(clock=lambda: now[0], sweep_interval=10)
    for n in range(50):
        await kv.incr(f"once-{n}", 1)
    await kv.set_flag("long", 60)
    assert len(kv) == 51
    now[0] = 10.0
    assert await kv.has_flag("long")
    assert len(kv) == 1


@pytest.mark.redis
async def test_redis_keys_live_under_the_prefix_with_their_expiry(
    request: pytest.FixtureRequest, redis_admin: Redis
) -> None:
    url, prefix = redis_slice(request)
    kv = RedisKeyValue(url, prefix)
    try:
        await kv.incr("count", 30)
        await kv.incr("count", 30)
        await kv.set_flag("flag", 30)
        assert await redis_admin.get(prefix + "count") == "2"
        assert 0 < await redis_admin.ttl(prefix + "count") <= 30
        assert 0 < await redis_admin.ttl(prefix + "flag") <= 30
        # Time left is rounded up: 1.5 s is 2.
        await redis_admin.pexpire(prefix + "count", 1500)
        assert await kv.counter("count") == Counter(2, 2)
        # A counter that lost its expiry (written by hand) reads with no time left, and
        # gets its window on the next hit.
        await redis_admin.set(prefix + "stuck", 7)
        assert await kv.counter("stuck") == Counter(7, 0)
        assert await kv.incr("stuck", 30) == 8
        assert 0 < await redis_admin.ttl(prefix + "stuck") <= 30
    finally:
        await kv.close()
    other = RedisKeyValue(url, prefix + "other:")
    try:
        assert (await other.counter("count")).value == 0
    finally:
        await other.close()


@pytest.mark.redis
async def test_redis_key_value_leaves_a_borrowed_client_open(
    request: pytest.FixtureRequest, redis_admin: Redis
) -> None:
    _, prefix = redis_slice(request)
    kv = RedisKeyValue(redis_admin, prefix)
    await kv.set_flag("flag", 30)
    await kv.close()
    assert await redis_admin.exists(prefix + "flag") == 1


# --- doorbell ---------------------------------------------------------------------------


async def test_first_item_is_the_subscribed_resync(bell: Doorbell) -> None:
    subscription = bell.subscribe("room")
    try:
        assert await next_item(subscription) == SUBSCRIBED
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]


async def test_rings_arrive_in_order_on_their_channels_only(bell: Doorbell) -> None:
    async with subscribed(bell, "room-1") as one, subscribed(bell, "room-1", "room-2") as both:
        await bell.ring("room-3", b"nobody listens")
        await bell.ring("room-2", b"x")
        for n in range(5):
            await bell.ring("room-1", b"%d" % n)
        expected = [Ring("room-1", b"%d" % n) for n in range(5)]
        assert [await next_item(one) for _ in range(5)] == expected
        assert [await next_item(both) for _ in range(6)] == [Ring("room-2", b"x"), *expected]


async def test_ring_many_rings_each_in_order(bell: Doorbell) -> None:
    async with subscribed(bell, "c.1", "c.2") as both, subscribed(bell, "c.2") as two:
        rings = [Ring("c.1" if n % 3 else "c.2", b"%d" % n) for n in range(9)]
        await bell.ring_many([Ring("nobody", b"-"), *rings])
        await bell.ring_many([])
        assert [await next_item(both) for _ in rings] == rings
        assert [await next_item(two) for _ in range(3)] == [r for r in rings if r.channel == "c.2"]


async def test_ready_takes_what_waits_behind_the_last_item_in_order(bell: Doorbell) -> None:
    """A subscriber may take a batch: ``ready`` never waits, and with ``anext`` it sees
    every ring once, in order."""
    subscription = bell.subscribe("room")
    try:
        assert await next_item(subscription) == SUBSCRIBED
        assert subscription.ready(10) == []
        rings = [Ring("room", b"%d" % n) for n in range(6)]
        await bell.ring_many(rings)
        first = await next_item(subscription)
        await asyncio.sleep(0.2)  # the other five arrive behind it (one pipeline)
        taken = [first, *subscription.ready(3)]
        assert len(taken) == 4
        taken.append(await next_item(subscription))
        taken += subscription.ready(10)
        assert taken == rings
        assert subscription.ready(10) == []
    finally:
        await subscription.aclose()


async def test_backlog_bounds_one_subscription(open_doorbell: OpenDoorbell) -> None:
    bell = open_doorbell()  # the adapter's default backlog is larger
    subscription = bell.subscribe("room", backlog=4)
    try:
        assert await next_item(subscription) == SUBSCRIBED
        await bell.ring_many([Ring("room", b"%d" % n) for n in range(20)])
        await bell.ring("room", b"last")
        received: list[Ring | Resync] = []
        while (item := await next_item(subscription)) != Ring("room", b"last"):
            received.append(item)
        assert OVERFLOW in received
        assert len([item for item in received if isinstance(item, Ring)]) < 20
    finally:
        await subscription.aclose()


async def test_every_subscriber_of_a_channel_gets_the_ring(bell: Doorbell) -> None:
    async with subscribed(bell, "room") as first, subscribed(bell, "room") as second:
        await bell.ring("room", b"committed 7")
        assert await next_item(first) == Ring("room", b"committed 7")
        assert await next_item(second) == Ring("room", b"committed 7")


async def test_closing_the_iterator_unsubscribes(bell: MemoryDoorbell | RedisDoorbell) -> None:
    async with subscribed(bell, "room") as staying:
        async with subscribed(bell, "room"):
            assert await bell.subscriber_count("room") == 2

        async def one_left() -> bool:
            return await bell.subscriber_count("room") == 1

        await eventually(one_left)
        await bell.ring("room", b"still here")
        assert await next_item(staying) == Ring("room", b"still here")

    async def none_left() -> bool:
        return await bell.subscriber_count("room") == 0

    await eventually(none_left)


async def test_close_ends_open_subscriptions(bell: Doorbell) -> None:
    waiting = bell.subscribe("room")  # its reader is blocked in anext() at close()
    idle = bell.subscribe("room")  # nobody is reading it at close()
    assert await next_item(waiting) == SUBSCRIBED
    assert await next_item(idle) == SUBSCRIBED
    received: list[Ring | Resync] = []

    async def drain() -> None:
        async for item in waiting:
            received.append(item)

    reader = asyncio.create_task(drain())
    await bell.ring("room", b"before close")

    async def rung() -> bool:
        return received == [Ring("room", b"before close")]

    await eventually(rung)
    await bell.close()
    async with asyncio.timeout(5):
        await reader
    assert received == [Ring("room", b"before close")]
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(5):
            while True:  # the ring may still be in its backlog; then the end
                assert await anext(idle) == Ring("room", b"before close")
    with pytest.raises(RuntimeError, match="closed"):
        bell.subscribe("room")
    with pytest.raises(RuntimeError, match="closed"):
        await bell.ring("room", b"too late")


async def test_subscribe_needs_a_channel(bell: Doorbell) -> None:
    with pytest.raises(ValueError, match="channel"):
        bell.subscribe()


async def test_overflow_drops_the_backlog_for_a_resync(open_doorbell: OpenDoorbell) -> None:
    bell = open_doorbell(queue_size=4)
    async with subscribed(bell, "room") as slow:
        for n in range(20):
            await bell.ring("room", b"%d" % n)
        await bell.ring("room", b"last")
        received: list[Ring | Resync] = []
        while (item := await next_item(slow)) != Ring("room", b"last"):
            received.append(item)
    assert OVERFLOW in received
    rings = [int(item.payload) for item in received if isinstance(item, Ring)]
    assert rings == sorted(rings)
    assert len(rings) < 20


# --- Redis only: several processes, lost connections ------------------------------------


@pytest.mark.redis
async def test_redis_rings_reach_other_doorbells_on_the_same_prefix_only(
    request: pytest.FixtureRequest,
) -> None:
    url, prefix = redis_slice(request)
    kv, ringer = open_redis(url, prefix)
    listener = RedisDoorbell(url, prefix)
    stranger = RedisDoorbell(url, prefix + "other:")
    try:
        async with subscribed(listener, "room") as mine, subscribed(stranger, "room") as theirs:
            await ringer.ring("room", b"hello")
            assert await next_item(mine) == Ring("room", b"hello")
            await stranger.ring("room", b"own prefix")
            assert await next_item(theirs) == Ring("room", b"own prefix")
    finally:
        for store in (kv, ringer, listener, stranger):
            await store.close()


@pytest.mark.redis
async def test_redis_subscription_reconnects_after_its_connection_is_killed(
    request: pytest.FixtureRequest, redis_admin: Redis
) -> None:
    url, prefix = redis_slice(request)
    name = f"sealchat-test-{uuid.uuid4().hex[:12]}"
    bell = RedisDoorbell(url, prefix, client_name=name)
    try:
        async with subscribed(bell, "room") as subscription:
            mine = [c for c in await redis_admin.client_list(_type="pubsub") if c["name"] == name]
            assert len(mine) == 1
            assert await redis_admin.client_kill_filter(_id=mine[0]["id"], _type="pubsub") == 1
            assert await next_item(subscription) == RECONNECTED
            await bell.ring("room", b"after the outage")
            assert await next_item(subscription) == Ring("room", b"after the outage")
    finally:
        await bell.close()


@pytest.mark.redis
async def test_redis_idle_subscription_stays_up_between_pings(
    request: pytest.FixtureRequest,
) -> None:
    url, prefix = redis_slice(request)
    bell = RedisDoorbell(url, prefix, health_check_interval=0.1)
    try:
        async with subscribed(bell, "room") as subscription:
            await asyncio.sleep(1.0)  # ten intervals of silence, answered PINGs
            await bell.ring("room", b"quiet")
            assert await next_item(subscription) == Ring("room", b"quiet")
    finally:
        await bell.close()


@pytest.mark.redis
async def test_redis_unanswered_ping_counts_as_a_lost_connection(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, prefix = redis_slice(request)
    bell = RedisDoorbell(url, prefix, health_check_interval=0.1)

    async def swallowed_ping(self: PubSub, message: object = None) -> None:
        """A PING lost on a half-open connection: sent, never answered."""

    try:
        async with subscribed(bell, "room") as subscription:
            monkeypatch.setattr(PubSub, "ping", swallowed_ping)
            assert await next_item(subscription) == RECONNECTED
            monkeypatch.undo()
            await bell.ring("room", b"back")
            async with asyncio.timeout(5):
                while (item := await anext(subscription)) == RECONNECTED:
                    pass
            assert item == Ring("room", b"back")
    finally:
        await bell.close()
