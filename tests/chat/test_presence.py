"""Presence across chat nodes: two real chat nodes on the same Redis, MariaDB and RabbitMQ
(cluster mode), friends connected to different nodes; and the recorder's order and failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import Any

import aiohttp
import pytest

from backend.chat.gateway.registry import Registry
from backend.chat.presence import PRESENCE_CHANNEL, ClusterPresence
from backend.stores.ephemeral import PresenceBook, Ring
from backend.stores.ephemeral.memory import MemoryDoorbell, MemoryPresenceBook
from tests.chat.test_gateway_push import befriend, online, until_pong
from tests.chat.ws_helpers import STEP, account, connect, recv

CLUSTER = pytest.param(
    "cluster",
    marks=[pytest.mark.mariadb, pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.mongo],
)


def offline(user: str) -> dict[str, Any]:
    return {"type": "presence", "user": user, "online": False}


async def next_presence(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while (frame := await recv(ws))["type"] != "presence":
        pass
    return frame


@pytest.mark.parametrize("make_settings", [CLUSTER], indirect=True)
async def test_friends_on_different_nodes_see_each_other(app_client):
    one, two = await app_client(), await app_client()
    alice, bob, dave = await account(one), await account(one), await account(two)
    await befriend(alice, bob)
    b = await connect(two, bob.token)  # Bob on node two
    d = await connect(one, dave.token)  # no one's friend
    assert await until_pong(b) == [], "no friend of Bob is online yet"

    a = await connect(one, alice.token)  # Alice on node one
    assert (await until_pong(a))[:1] == online(bob.id), "the snapshot spans the cluster"
    assert await next_presence(b) == online(alice.id)[0], "the change crosses nodes"

    a2 = await connect(two, alice.token)  # another device, on the other node
    assert (await until_pong(a2))[:1] == online(bob.id)
    await a.close()  # still connected on node two: no change for Bob
    await a2.close()  # the last one anywhere
    assert await next_presence(b) == offline(alice.id), "offline once, only when she left both"
    assert [f for f in await until_pong(b) if f["type"] == "presence"] == []
    assert await until_pong(d) == [], "Dave heard nothing of anyone"
    for ws in (b, d):
        await ws.close()


# --- the recorder on its own: ordering and a store that fails ---------------------------------


class Friends:
    """The social graph's one question presence asks."""

    def __init__(self, graph: dict[str, list[str]]) -> None:
        self.graph = graph

    async def friends_of(self, user: str) -> list[str]:
        return self.graph.get(user, [])


class Unreachable(PresenceBook):
    """A presence book whose server is down."""

    async def arrive(self, user: str, node: str, ttl_seconds: int) -> bool:
        raise ConnectionError("redis down")

    async def depart(self, user: str, node: str) -> bool:
        raise ConnectionError("redis down")

    async def renew(self, users: Collection[str], node: str, ttl_seconds: int) -> None:
        raise ConnectionError("redis down")

    async def online(self, users: Collection[str]) -> set[str]:
        raise ConnectionError("redis down")

    async def close(self) -> None:
        pass


async def rings(bell: MemoryDoorbell, count: int) -> list[dict[str, Any]]:
    heard = []
    async with asyncio.timeout(STEP):
        async for item in bell.subscribe(PRESENCE_CHANNEL):
            if isinstance(item, Ring):
                heard.append(json.loads(item.payload))
                if len(heard) == count:
                    return heard
    raise AssertionError(f"the doorbell closed after {heard}")


async def test_changes_are_announced_in_the_order_the_gateway_saw_them():
    bell, book = MemoryDoorbell(), MemoryPresenceBook()
    presence = ClusterPresence(book, bell, Friends({"alice": ["bob"]}), Registry())  # type: ignore[arg-type]
    listening = asyncio.create_task(rings(bell, 3))
    await asyncio.sleep(0)  # subscribed before the first ring
    async with presence.running():
        for online_now in (True, False, True):
            await presence.changed("alice", online_now)
        heard = await listening
    assert [h["online"] for h in heard] == [True, False, True]
    assert all(h["user"] == "alice" and h["friends"] == ["bob"] for h in heard)
    assert presence.announced == 3 and presence.failures == 0


async def test_a_user_without_friends_is_recorded_but_not_announced():
    bell, book = MemoryDoorbell(), MemoryPresenceBook()
    presence = ClusterPresence(book, bell, Friends({}), Registry())  # type: ignore[arg-type]
    async with presence.running():
        await presence.changed("hermit", True)
    assert await book.online(["hermit"]) == {"hermit"}
    assert presence.announced == 0


async def test_an_unreachable_book_costs_the_change_not_the_service():
    bell = MemoryDoorbell()
    presence = ClusterPresence(Unreachable(), bell, Friends({"alice": ["bob"]}), Registry())  # type: ignore[arg-type]
    async with presence.running():
        await presence.changed("alice", True)
        await presence.changed("alice", False)
    assert presence.failures == 2 and presence.announced == 0


async def test_stopping_announces_departures_still_queued():
    bell, book = MemoryDoorbell(), MemoryPresenceBook()
    await book.arrive("alice", "elsewhere", 60)
    presence = ClusterPresence(book, bell, Friends({"alice": ["bob"]}), Registry(), node="here")  # type: ignore[arg-type]
    async with presence.running():
        await book.arrive("alice", "here", 60)
        await book.depart("alice", "elsewhere")
        await presence.changed("alice", False)  # queued as the node stops
    assert await book.online(["alice"]) == set(), "the departure was recorded on the way out"
