"""Rooms, membership and the membership log through the real HTTP API, both modes."""

from __future__ import annotations

import re

import pytest

from tests.chat.social_world import World, make_world


@pytest.fixture
async def world(aiohttp_client, settings) -> World:
    return await make_world(aiohttp_client, settings)


def roster(room: dict) -> dict[str, str]:
    return {m["id"]: m["role"] for m in room["members"]}


async def log_of(person, room: str, after: int = 0) -> list[tuple[str, str, str | None]]:
    entries = (await person.call("GET", f"/rooms/{room}/membership?after={after}"))["entries"]
    return [(e["action"], e["actor"], e.get("target")) for e in entries]


async def test_create_a_group_room(world):
    a = await world.person()
    room = await a.call("POST", "/rooms", {"name": "night owls", "topic": "late"}, expect=201)
    assert re.fullmatch(r"r_[A-Za-z0-9_-]{22}", room["id"])
    assert (room["kind"], room["name"], room["topic"], room["creator"]) == (
        "group",
        "night owls",
        "late",
        a.id,
    )
    assert roster(room) == {a.id: "admin"} and room["member_count"] == 1 and room["log_seq"] == 1
    assert await a.call("GET", f"/rooms/{room['id']}") == room
    listed = (await a.call("GET", "/rooms"))["rooms"]
    assert [(r["id"], r["role"], r["member_count"]) for r in listed] == [(room["id"], "admin", 1)]
    assert await log_of(a, room["id"]) == [("create", a.id, a.id)]
    assert world.seen_by(a, type="member_event", action="create", member_count=1, log_seq=1)
    other = await a.call("POST", "/rooms", {"name": "x"}, expect=201)
    assert other["id"] != room["id"]


async def test_room_names_are_validated(world):
    a = await world.person()
    for body in (
        {},
        {"name": ""},
        {"name": "x" * 65},
        {"name": "bad\x1b[31m"},
        {"name": "t", "topic": 5},
    ):
        assert await a.error("POST", "/rooms", body, expect=422) == "invalid", body


async def test_invite_join_and_member_counts(world):
    a, b, c = await world.person(), await world.person(), await world.person()
    await world.befriend(a, b, c)
    room = (await a.call("POST", "/rooms", {"name": "team"}, expect=201))["id"]
    await a.call("POST", f"/rooms/{room}/invites", {"user": b.id}, expect=201)
    assert world.seen_by(b, type="room_invite") == [
        {"type": "room_invite", "room": room, "name": "team", "by": a.id, "log_seq": 2}
    ]
    assert world.seen_by(a, action="invite", user=b.id, member_count=1)
    invites = (await b.call("GET", "/invites"))["invites"]
    assert [(i["room"], i["name"], i["by"]) for i in invites] == [(room, "team", a.id)]
    assert await b.error("GET", f"/rooms/{room}", expect=404) == "not_found", "invited ≠ member"
    assert (await a.call("GET", f"/rooms/{room}"))["invited"] == [b.id]
    joined = await b.call("POST", f"/rooms/{room}/join")
    assert roster(joined) == {a.id: "admin", b.id: "member"} and joined["invited"] == []
    join_event = world.seen_by(a, action="join")[-1]
    assert join_event == world.seen_by(b, action="join")[-1]
    assert (join_event["member_count"], join_event["log_seq"], join_event["user"]) == (2, 3, b.id)
    # A member (not only an admin) may invite their own friends.
    await world.befriend(b, c)
    await b.call("POST", f"/rooms/{room}/invites", {"user": c.id}, expect=201)
    await c.call("POST", f"/rooms/{room}/join")
    members = await c.call("GET", f"/rooms/{room}/members")
    assert members["member_count"] == 3 and [m["id"] for m in members["members"]] == [
        a.id,
        b.id,
        c.id,
    ]
    assert sorted(await world.social.members(room)) == sorted([a.id, b.id, c.id])
    assert await world.social.rooms_of(c.id) == [room]
    assert await b.error("POST", f"/rooms/{room}/join", expect=404) == "not_found", "no invite"


async def test_invites_that_are_refused(world):
    a, b, c, d = [await world.person() for _ in range(4)]
    await world.befriend(a, b)
    room = await world.group(a, b)
    invite = f"/rooms/{room}/invites"
    assert await a.error("POST", invite, {"user": c.id}, expect=403) == "forbidden", "not a friend"
    assert await a.error("POST", invite, {"user": b.id}, expect=409) == "conflict", "member"
    assert await a.error("POST", invite, {"user": a.id}, expect=422) == "invalid"
    assert await a.error("POST", invite, {"user": "Bad Id!"}, expect=422) == "invalid"
    await world.befriend(a, c)
    await a.call("POST", invite, {"user": c.id}, expect=201)
    assert await a.error("POST", invite, {"user": c.id}, expect=409) == "conflict", "invited"
    await world.befriend(d, a)
    assert await d.error("POST", invite, {"user": a.id}, expect=404) == "not_found", "not in it"
    await c.call("POST", f"/rooms/{room}/decline")
    assert (await c.call("GET", "/invites"))["invites"] == []
    assert await c.error("POST", f"/rooms/{room}/decline", expect=404) == "not_found"
    assert await c.error("POST", f"/rooms/{room}/join", expect=404) == "not_found"
    assert world.seen_by(a, type="invite_event", action="decline", user=c.id)


async def test_non_members_cannot_tell_a_room_exists(world):
    a, b, stranger = await world.person(), await world.person(), await world.person()
    room = await world.group(a, b)
    await world.befriend(stranger, a)
    missing = "r_" + "x" * 22
    for rid in (room, missing, "not-a-room-id"):
        for method, path, body in (
            ("GET", "", None),
            ("GET", "/members", None),
            ("GET", "/membership", None),
            ("POST", "/invites", {"user": a.id}),
            ("POST", "/kick", {"user": a.id}),
            ("POST", "/role", {"user": a.id, "role": "member"}),
            ("POST", "/leave", {"confirm": True}),
            ("DELETE", "", {"confirm": True}),
        ):
            body_ = await stranger.call(method, f"/rooms/{rid}{path}", body, expect=404)
            assert body_["error"]["code"] == "not_found", (rid, path)
            assert "among yours" in body_["error"]["message"], "same answer, seen or not"
    assert not await world.social.is_member(room, stranger.id)


async def test_only_admins_kick_and_the_kicked_see_nothing_more(world):
    a, b, c, d = [await world.person() for _ in range(4)]
    room = await world.group(a, b, c)
    kick = f"/rooms/{room}/kick"
    assert await b.error("POST", kick, {"user": c.id}, expect=403) == "forbidden"
    assert await a.error("POST", kick, {"user": a.id}, expect=422) == "invalid"
    assert await a.error("POST", kick, {"user": d.id}, expect=404) == "not_found"
    await a.call("POST", kick, {"user": c.id})
    kicked = world.seen_by(c, action="kick")
    assert kicked == [
        {
            "type": "member_event",
            "room": room,
            "action": "kick",
            "user": c.id,
            "actor": a.id,
            "member_count": 2,
            "log_seq": kicked[0]["log_seq"],
        }
    ]
    assert world.seen_by(a, action="kick") == world.seen_by(b, action="kick") == kicked
    for path in ("", "/members", "/membership"):
        assert await c.error("GET", f"/rooms/{room}{path}", expect=404) == "not_found"
    assert not await world.social.is_member(room, c.id)
    assert room not in await world.social.rooms_of(c.id)
    heard = len(world.seen_by(c))
    await world.befriend(a, d)
    await a.call("POST", f"/rooms/{room}/invites", {"user": d.id}, expect=201)
    await d.call("POST", f"/rooms/{room}/join")
    assert len(world.seen_by(c)) == heard, "nothing more about the room reaches c"


async def test_roles_admins_and_the_creator(world):
    a, b, c = [await world.person() for _ in range(3)]
    room = await world.group(a, b, c)
    role = f"/rooms/{room}/role"
    assert await b.error("POST", role, {"user": c.id, "role": "admin"}, expect=403) == "forbidden"
    await a.call("POST", role, {"user": b.id, "role": "admin"})
    assert world.seen_by(c, action="role", user=b.id, role="admin", member_count=3)
    assert await a.error("POST", role, {"user": b.id, "role": "admin"}, expect=409) == "conflict"
    assert await b.error("POST", role, {"user": a.id, "role": "member"}, expect=403) == "forbidden"
    await b.call("POST", role, {"user": c.id, "role": "admin"})
    assert await b.error("POST", role, {"user": c.id, "role": "member"}, expect=403), "creator only"
    kick = f"/rooms/{room}/kick"
    assert await b.error("POST", kick, {"user": c.id}, expect=403) == "forbidden", "admin"
    assert await b.error("POST", kick, {"user": a.id}, expect=403) == "forbidden", "creator"
    await c.call("POST", role, {"user": c.id, "role": "member"})  # stepping down oneself
    assert await c.error("POST", role, {"user": c.id, "role": "boss"}, expect=422) == "invalid"
    await a.call("POST", kick, {"user": b.id})
    assert roster(await a.call("GET", f"/rooms/{room}")) == {a.id: "admin", c.id: "member"}


async def test_leaving_needs_confirm_and_hands_the_room_on(world):
    a, b, c = [await world.person() for _ in range(3)]
    room = await world.group(a, b, c)
    leave = f"/rooms/{room}/leave"
    for body in (None, {}, {"confirm": False}):
        err = await a.call("POST", leave, body, expect=422)
        assert err["error"]["code"] == "invalid" and "confirm: true" in err["error"]["message"]
    assert await a.error("POST", leave, {"confirm": "yes please"}, expect=422) == "invalid"
    await a.call("POST", leave, {"confirm": True})
    assert world.seen_by(a, action="leave", user=a.id, member_count=2)
    assert await a.error("GET", f"/rooms/{room}", expect=404) == "not_found"
    # The last admin left: the longest-standing member becomes admin.
    assert roster(await b.call("GET", f"/rooms/{room}")) == {b.id: "admin", c.id: "member"}
    assert (await log_of(b, room))[-2:] == [("leave", a.id, a.id), ("role", a.id, b.id)]
    # The creator is gone from the room: its admins own it now, plain members still do not.
    assert await c.error("DELETE", f"/rooms/{room}", {"confirm": True}, expect=403)
    await b.call("POST", leave, {"confirm": True})
    await c.call("POST", leave, {"confirm": True})
    assert await world.social.rooms.store.room(room) is None, "an empty group is deleted"
    assert await world.social.members(room) == []


async def test_only_the_creator_deletes_and_everyone_is_told(world):
    a, b, c, d = [await world.person() for _ in range(4)]
    room = await world.group(a, b, c)
    await a.call("POST", f"/rooms/{room}/role", {"user": b.id, "role": "admin"})
    await world.befriend(a, d)
    await a.call("POST", f"/rooms/{room}/invites", {"user": d.id}, expect=201)
    delete = f"/rooms/{room}"
    assert await b.error("DELETE", delete, {"confirm": True}, expect=403) == "forbidden", "admin"
    assert await c.error("DELETE", delete, {"confirm": True}, expect=403) == "forbidden"
    err = await a.call("DELETE", delete, expect=422)
    assert "confirm: true" in err["error"]["message"]
    assert await a.error("DELETE", delete, {"confirm": False}, expect=422) == "invalid"
    await a.call("DELETE", delete, {"confirm": True})
    told = [users for users, e in world.notes if e["type"] == "room_deleted"]
    assert [sorted(u) for u in told] == [sorted([a.id, b.id, c.id, d.id])]
    for p in (a, b, c):
        assert await p.error("GET", delete, expect=404) == "not_found"
        assert (await p.call("GET", "/rooms"))["rooms"] == []
    assert (await d.call("GET", "/invites"))["invites"] == []
    assert await d.error("POST", f"/rooms/{room}/join", expect=404) == "not_found"
    assert await world.social.members(room) == []


async def test_direct_rooms_are_one_per_pair_and_reopen(world):
    a, b, c = [await world.person() for _ in range(3)]
    assert await a.error("POST", "/rooms/direct", {"user": b.id}, expect=403) == "forbidden"
    assert await a.error("POST", "/rooms/direct", {"user": a.id}, expect=422) == "invalid"
    await world.befriend(a, b)
    room = await a.call("POST", "/rooms/direct", {"user": b.id}, expect=201)
    assert room["kind"] == "direct" and roster(room) == {a.id: "member", b.id: "member"}
    assert "name" not in room and room["member_count"] == 2
    assert world.seen_by(b, action="join", user=b.id, member_count=2)
    same = await b.call("POST", "/rooms/direct", {"user": a.id})
    assert same["id"] == room["id"] and same["log_seq"] == room["log_seq"], "not duplicated"
    rid = room["id"]
    assert await a.error("POST", f"/rooms/{rid}/invites", {"user": c.id}, expect=422) == "invalid"
    assert await a.error("POST", f"/rooms/{rid}/kick", {"user": b.id}, expect=422) == "invalid"
    assert await a.error("DELETE", f"/rooms/{rid}", {"confirm": True}, expect=422) == "invalid"
    assert await a.error("POST", f"/rooms/{rid}/role", {"user": b.id, "role": "admin"}, expect=422)
    await b.call("POST", f"/rooms/{rid}/leave", {"confirm": True})
    assert await world.social.members(rid) == [a.id]
    reopened = await a.call("POST", "/rooms/direct", {"user": b.id})
    assert reopened["id"] == rid and reopened["member_count"] == 2
    assert await log_of(a, rid) == [
        ("create", a.id, a.id),
        ("join", a.id, b.id),
        ("leave", b.id, b.id),
        ("join", a.id, b.id),
    ]


async def test_membership_log_pages_in_order(world):
    a, b, c = [await world.person() for _ in range(3)]
    room = await world.group(a, b, c)
    await a.call("POST", f"/rooms/{room}/kick", {"user": c.id})
    full = await a.call("GET", f"/rooms/{room}/membership")
    seqs = [e["seq"] for e in full["entries"]]
    assert seqs == list(range(1, len(seqs) + 1)) and full["last_seq"] == seqs[-1] == 6
    assert [e["action"] for e in full["entries"]] == [
        "create",
        "invite",
        "join",
        "invite",
        "join",
        "kick",
    ]
    first = full["entries"][0]
    assert set(first) == {"seq", "action", "actor", "target", "ts"}, "no signature yet"
    page = await a.call("GET", f"/rooms/{room}/membership?after=2&limit=2")
    assert [e["seq"] for e in page["entries"]] == [3, 4] and page["last_seq"] == 6
    assert (await a.call("GET", f"/rooms/{room}/membership?after=6"))["entries"] == []
    for query in ("after=-1", "after=x", "limit=0", "limit=501", "since=3"):
        path = f"/rooms/{room}/membership?{query}"
        assert await a.error("GET", path, expect=422) == "invalid", query
    assert [e["log_seq"] for e in world.seen_by(b, type="member_event")] == [3, 4, 5, 6]


async def test_deleting_an_account_removes_its_memberships(world):
    a, b, c = [await world.person() for _ in range(3)]
    room = await world.group(a, b, c)
    await a.call("POST", f"/rooms/{room}/role", {"user": b.id, "role": "admin"})
    await c.delete_account()
    assert roster(await b.call("GET", f"/rooms/{room}")) == {a.id: "admin", b.id: "admin"}
    await a.delete_account()
    kept = await b.call("GET", f"/rooms/{room}")
    assert "creator" not in kept and kept["member_count"] == 1, "the room outlives its creator"
    assert len((await b.call("GET", f"/rooms/{room}/membership"))["entries"]) == 6, "log intact"
    await b.call("DELETE", f"/rooms/{room}", {"confirm": True})  # admins inherit the room
    assert await world.social.rooms_of(b.id) == []


async def test_a_reused_id_does_not_inherit_an_old_direct_room(world):
    a, b = await world.person(), await world.person()
    await world.befriend(a, b)
    old = (await a.call("POST", "/rooms/direct", {"user": b.id}, expect=201))["id"]
    await b.delete_account()
    b2 = await world.person(b.id)
    await world.befriend(a, b2)
    new = await b2.call("POST", "/rooms/direct", {"user": a.id}, expect=201)
    assert new["id"] != old and new["log_seq"] == 2
    assert await b2.error("GET", f"/rooms/{old}", expect=404) == "not_found"


async def test_the_api_is_documented(world):
    r = await world.client.get("/chat/openapi.json")
    paths = (await r.json())["paths"]
    for path in (
        "/chat/friends",
        "/chat/friends/requests",
        "/chat/blocks/{user_id}",
        "/chat/rooms/direct",
        "/chat/rooms/{room_id}/membership",
        "/chat/invites",
    ):
        assert path in paths, path


async def test_a_creator_who_left_and_came_back_does_not_own_the_room(world):
    a, b = await world.person(), await world.person()
    room = await world.group(a, b)
    await a.call("POST", f"/rooms/{room}/leave", {"confirm": True})
    await b.call("POST", f"/rooms/{room}/invites", {"user": a.id}, expect=201)
    await a.call("POST", f"/rooms/{room}/join")
    assert roster(await a.call("GET", f"/rooms/{room}")) == {b.id: "admin", a.id: "member"}
    assert await a.error("DELETE", f"/rooms/{room}", {"confirm": True}, expect=403) == "forbidden"
    await b.call("POST", f"/rooms/{room}/role", {"user": a.id, "role": "admin"})
    await a.call("DELETE", f"/rooms/{room}", {"confirm": True})


async def test_event_records_for_the_log_service(world):
    a, b, c = [await world.person() for _ in range(3)]
    room = await world.group(a, b, c)
    await a.call("POST", f"/rooms/{room}/kick", {"user": c.id})
    await b.call("POST", f"/rooms/{room}/leave", {"confirm": True})
    await a.call("DELETE", f"/rooms/{room}", {"confirm": True})
    rooms = [(d["action"], d["actor"], d.get("target")) for cat, s, d in world.records if s == room]
    assert rooms == [
        ("create", a.id, None),
        ("invite", a.id, b.id),
        ("join", b.id, None),
        ("invite", a.id, c.id),
        ("join", c.id, None),
        ("kick", a.id, c.id),
        ("leave", b.id, None),
        ("delete", a.id, None),
    ]
    friends = [(s, d["action"], d["other"]) for cat, s, d in world.records if cat == "friend"]
    assert friends[:2] == [(a.id, "request", b.id), (b.id, "accept", a.id)]
    assert all(
        set(d) <= {"action", "actor", "target", "other", "kind", "role", "reason"}
        for _, _, d in world.records
    ), "ids and actions only"
