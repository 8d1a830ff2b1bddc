"""The presence book's contract, against the in-process adapter and real Redis: a user is
online while any node's claim on them is live; only the first claim and the last departure
report a change; claims lapse unless renewed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from backend.stores.ephemeral import PresenceBook
from backend.stores.ephemeral.memory import MemoryPresenceBook
from backend.stores.ephemeral.redis_presence import CHUNK, RedisPresenceBook
from tests.contracts.test_ephemeral import KINDS, redis_slice

TTL = 60


@pytest.fixture(params=KINDS)
async def book(request: pytest.FixtureRequest) -> AsyncIterator[PresenceBook]:
    store: PresenceBook
    if request.param == "memory":
        store = MemoryPresenceBook()
    else:
        store = RedisPresenceBook(*redis_slice(request))
    try:
        yield store
    finally:
        await store.close()


async def test_first_arrival_and_last_departure_are_the_changes(book: PresenceBook) -> None:
    assert await book.arrive("alice", "node-a", TTL) is True
    assert await book.arrive("alice", "node-b", TTL) is False, "already online on node-a"
    assert await book.arrive("alice", "node-a", TTL) is False, "a repeated claim is no change"
    assert await book.depart("alice", "node-a") is False, "still on node-b"
    assert await book.online(["alice", "bob"]) == {"alice"}
    assert await book.depart("alice", "node-b") is True
    assert await book.online(["alice"]) == set()
    assert await book.depart("alice", "node-b") is True, "departing twice: still offline"


async def test_users_are_independent(book: PresenceBook) -> None:
    assert await book.arrive("alice", "node-a", TTL)
    assert await book.arrive("bob", "node-a", TTL), "bob's first claim, whatever alice's"
    assert await book.depart("alice", "node-a")
    assert await book.online(["alice", "bob", "carol"]) == {"bob"}


async def test_claims_lapse_unless_renewed(book: PresenceBook) -> None:
    await book.arrive("alice", "node-a", 1)
    await book.arrive("bob", "node-a", 1)
    await book.renew(["bob"], "node-a", TTL)
    await asyncio.sleep(1.3)
    assert await book.online(["alice", "bob"]) == {"bob"}
    assert await book.arrive("alice", "node-b", TTL) is True, "her lapsed claim counts for nothing"
    assert await book.depart("bob", "node-a") is True


async def test_renew_remakes_a_claim_that_was_lost(book: PresenceBook) -> None:
    """After an outage of the store a node re-makes the claims of everyone connected to it."""
    await book.renew(["alice", "bob"], "node-a", TTL)
    assert await book.online(["alice", "bob"]) == {"alice", "bob"}
    assert await book.arrive("alice", "node-b", TTL) is False


async def test_many_users_at_once(book: PresenceBook) -> None:
    users = [f"user{i}" for i in range(CHUNK * 2 + 7)]
    await book.renew(users[::2], "node-a", TTL)
    assert await book.online(users) == set(users[::2])
    assert await book.online([]) == set()


async def test_a_ttl_below_one_second_is_refused(book: PresenceBook) -> None:
    with pytest.raises(ValueError):
        await book.arrive("alice", "node-a", 0)
    with pytest.raises(ValueError):
        await book.renew(["alice"], "node-a", 0)


async def test_memory_claims_follow_the_injected_clock() -> None:
    now = [100.0]
    book = MemoryPresenceBook(clock=lambda: now[0])
    await book.arrive("alice", "node-a", 10)
    now[0] = 109.9
    assert await book.online(["alice"]) == {"alice"}
    now[0] = 110.0
    assert await book.online(["alice"]) == set()
    assert await book.arrive("alice", "node-a", 10) is True


@pytest.mark.redis
async def test_redis_keys_live_under_the_prefix_and_expire(redis_url: str, redis_prefix: str):
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    book = RedisPresenceBook(redis_url, prefix)
    admin = Redis.from_url(redis_url)
    try:
        await book.arrive("alice", "node-a", TTL)
        await book.arrive("alice", "node-b", 5)
        assert [k async for k in admin.scan_iter(f"{prefix}*")] == [
            f"{prefix}presence:alice".encode()
        ]
        assert 0 < await admin.ttl(f"{prefix}presence:alice") <= TTL, (
            "the key lives with its longest claim"
        )
        await book.depart("alice", "node-a")
        await book.depart("alice", "node-b")
        assert await admin.zcard(f"{prefix}presence:alice") == 0
    finally:
        await book.close()
        await admin.aclose()
