"""Friends and blocks through the real HTTP API, embedded and cluster mode."""

from __future__ import annotations

import pytest

from tests.chat.social_world import World, make_world


@pytest.fixture
async def world(aiohttp_client, settings) -> World:
    return await make_world(aiohttp_client, settings)


def ids(entries: list[dict]) -> list[str]:
    return [e["id"] for e in entries]


async def test_request_accept_and_the_list_reveals_only_ids(world):
    a, b = await world.person(), await world.person()
    assert await a.call("POST", "/friends/requests", {"user": b.id}) == {"status": "pending"}
    mine, theirs = await a.call("GET", "/friends"), await b.call("GET", "/friends")
    assert ids(mine["outgoing"]) == [b.id] and mine["incoming"] == [] and mine["friends"] == []
    assert ids(theirs["incoming"]) == [a.id] and theirs["outgoing"] == []
    event = {"type": "friend_event", "action": "request", "from": a.id, "to": b.id}
    assert world.seen_by(a, action="request") == world.seen_by(b, action="request") == [event]
    await b.call("POST", f"/friends/requests/{a.id}/accept")
    for me, other in ((a, b), (b, a)):
        listing = await me.call("GET", "/friends")
        assert ids(listing["friends"]) == [other.id]
        assert listing["incoming"] == listing["outgoing"] == []
        assert set(listing["friends"][0]) == {"id", "since"}, "ids only: no email"
        assert "example.org" not in str(listing)
    assert world.seen_by(a, action="accept") == [
        {"type": "friend_event", "action": "accept", "from": b.id, "to": a.id}
    ]
    assert await world.social.friends_of(a.id) == [b.id]


async def test_asking_back_accepts(world):
    a, b = await world.person(), await world.person()
    await a.call("POST", "/friends/requests", {"user": b.id})
    assert await b.call("POST", "/friends/requests", {"user": a.id}) == {"status": "friends"}
    assert ids((await a.call("GET", "/friends"))["friends"]) == [b.id]


async def test_decline_and_cancel(world):
    a, b = await world.person(), await world.person()
    await a.call("POST", "/friends/requests", {"user": b.id})
    await b.call("POST", f"/friends/requests/{a.id}/decline")
    assert (await a.call("GET", "/friends"))["outgoing"] == []
    assert world.seen_by(a, action="decline", **{"from": b.id})
    path = f"/friends/requests/{a.id}/decline"
    assert await b.error("POST", path, expect=404) == "not_found"
    assert await b.error("POST", f"/friends/requests/{a.id}/accept", expect=404) == "not_found"
    await a.call("POST", "/friends/requests", {"user": b.id})
    await a.call("DELETE", f"/friends/requests/{b.id}")
    assert (await b.call("GET", "/friends"))["incoming"] == []
    assert world.seen_by(b, action="cancel", **{"from": a.id})
    assert await a.error("DELETE", f"/friends/requests/{b.id}", expect=404) == "not_found"
    assert await b.error("POST", f"/friends/requests/{a.id}/accept", expect=404) == "not_found"


async def test_remove_a_friend(world):
    a, b = await world.person(), await world.person()
    await world.befriend(a, b)
    await b.call("DELETE", f"/friends/{a.id}")
    assert (await a.call("GET", "/friends"))["friends"] == []
    assert world.seen_by(a, action="remove") == world.seen_by(b, action="remove")
    assert await b.error("DELETE", f"/friends/{a.id}", expect=404) == "not_found"


async def test_requests_that_are_refused(world):
    a, b = await world.person(), await world.person()
    assert await a.error("POST", "/friends/requests", {"user": a.id}, expect=422) == "invalid"
    assert await a.error("POST", "/friends/requests", {"user": "nobody-here"}, expect=404)
    assert await a.error("POST", "/friends/requests", {"user": "Bad Id!"}, expect=422)
    assert await a.error("POST", "/friends/requests", {"user": b.id, "x": 1}, expect=422)
    assert await a.error("POST", "/friends/requests", {}, expect=422) == "invalid"
    assert await a.error("POST", f"/friends/requests/{'Bad Id!'}/accept", expect=422)
    await a.call("POST", "/friends/requests", {"user": b.id})
    assert await a.error("POST", "/friends/requests", {"user": b.id}, expect=409) == "conflict"
    await b.call("POST", f"/friends/requests/{a.id}/accept")
    assert await a.error("POST", "/friends/requests", {"user": b.id}, expect=409) == "conflict"
    r = await world.client.get("/chat/friends")
    assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"


async def test_block_cuts_every_tie_and_keeps_them_cut(world):
    a, b, c = await world.person(), await world.person(), await world.person()
    await world.befriend(a, b)
    await world.befriend(b, c)
    direct = (await b.call("POST", "/rooms/direct", {"user": a.id}, expect=201))["id"]
    group = await world.group(b, c)
    await a.call("POST", "/blocks", {"user": b.id})
    assert ids((await a.call("GET", "/blocks"))["blocked"]) == [b.id]
    assert (await a.call("GET", "/friends"))["friends"] == []
    assert ids((await b.call("GET", "/friends"))["friends"]) == [c.id]
    # The blocked user cannot request, open a 1:1 room with, or invite the blocker …
    assert await b.error("POST", "/friends/requests", {"user": a.id}, expect=403) == "forbidden"
    assert await b.error("POST", "/rooms/direct", {"user": a.id}, expect=403) == "forbidden"
    path = f"/rooms/{group}/invites"
    assert await b.error("POST", path, {"user": a.id}, expect=403) == "forbidden"
    # … and the blocker must unblock first.
    assert await a.error("POST", "/friends/requests", {"user": b.id}, expect=409) == "conflict"
    # The blocker left the pair's 1:1 room: nothing sent there reaches them any more.
    assert not await world.social.is_member(direct, a.id)
    assert await world.social.members(direct) == [b.id]
    assert await world.social.blocked_between(b.id, a.id)
    assert await world.social.friends_of(b.id) == [c.id], "presence no longer reaches a"
    log = await b.call("GET", f"/rooms/{direct}/membership")
    assert [(e["action"], e["target"]) for e in log["entries"]][-1] == ("leave", a.id)
    # The blocker hears "block"; the blocked user only sees the friendship end.
    assert world.seen_by(a, type="friend_event", action="block")
    assert not world.seen_by(b, action="block")
    assert world.seen_by(b, type="friend_event", action="remove", **{"from": a.id})
    await a.call("DELETE", f"/blocks/{b.id}")
    assert await a.error("DELETE", f"/blocks/{b.id}", expect=404) == "not_found"
    await b.call("POST", "/friends/requests", {"user": a.id})
    await a.call("POST", f"/friends/requests/{b.id}/accept")
    again = await a.call("POST", "/rooms/direct", {"user": b.id})
    assert again["id"] == direct and again["member_count"] == 2, "the same room, reopened"


async def test_block_drops_pending_requests_both_ways(world):
    a, b, c = await world.person(), await world.person(), await world.person()
    await b.call("POST", "/friends/requests", {"user": a.id})
    await a.call("POST", "/friends/requests", {"user": c.id})
    await a.call("POST", "/blocks", {"user": b.id})
    await a.call("POST", "/blocks", {"user": c.id})
    await a.call("POST", "/blocks", {"user": c.id})  # blocking twice is harmless
    listing = await a.call("GET", "/friends")
    assert listing["incoming"] == listing["outgoing"] == []
    assert world.seen_by(b, action="decline", **{"from": a.id})
    assert world.seen_by(c, action="cancel", **{"from": a.id})
    assert await a.error("POST", "/blocks", {"user": a.id}, expect=422) == "invalid"
    assert await a.error("POST", "/blocks", {"user": "nobody-here"}, expect=404) == "not_found"


async def test_deleting_an_account_ends_its_friendships(world):
    a, b, c = await world.person(), await world.person(), await world.person()
    await world.befriend(a, b)
    await c.call("POST", "/friends/requests", {"user": a.id})
    await b.call("POST", "/blocks", {"user": c.id})
    await a.delete_account()
    assert (await b.call("GET", "/friends"))["friends"] == []
    assert (await c.call("GET", "/friends"))["outgoing"] == []
    await c.delete_account()
    assert (await b.call("GET", "/blocks"))["blocked"] == []
