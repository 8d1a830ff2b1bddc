"""The relational port's contract for the social graph and rooms, on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from backend.auth.store import AuthStore, User
from backend.chat.room_store import DirectRoomExists, Room, RoomStore
from backend.chat.social_store import RequestOutcome, Severed, SocialStore
from tests.contracts.relational import BACKENDS, fresh_engine, migrated

NOW = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
USERS = ("alice", "bob", "carol")


@pytest.fixture(params=BACKENDS)
async def stores(request, tmp_path):
    async for engine in fresh_engine(request, tmp_path):
        await migrated(engine)
        accounts = AuthStore(engine)
        for uid in USERS:
            await accounts.create_user(User(uid, f"{uid}@example.org", "$argon2id$x", NOW))
        yield accounts, SocialStore(engine), RoomStore(engine)


def group(room_id: str = "r_" + "g" * 22, creator: str = "alice") -> Room:
    return Room(room_id, "group", "team", None, creator, None, 0, NOW, None)


async def test_requests_friendship_and_the_auto_accept(stores):
    _, social, _ = stores
    assert await social.request("alice", "bob", NOW) is RequestOutcome.PENDING
    assert await social.request("alice", "bob", NOW) is RequestOutcome.DUPLICATE
    assert [r.user_id for r in await social.requests_to("bob")] == ["alice"]
    assert [r.user_id for r in await social.requests_from("alice")] == ["bob"]
    assert await social.request("bob", "alice", NOW) is RequestOutcome.FRIENDS, "bob asked back"
    assert await social.requests_to("bob") == [] and await social.requests_from("alice") == []
    assert await social.are_friends("alice", "bob") and await social.are_friends("bob", "alice")
    got = await social.friends_of("alice")
    assert [f.user_id for f in got] == ["bob"] and got[0].at == NOW
    assert await social.unfriend("bob", "alice")
    assert not await social.unfriend("bob", "alice")
    assert await social.friends_of("alice") == []


async def test_accept_decline_cancel(stores):
    _, social, _ = stores
    await social.request("alice", "bob", NOW)
    await social.request("carol", "bob", NOW)
    assert not await social.accept("bob", "alice", NOW), "only the receiver accepts"
    assert await social.accept("alice", "bob", NOW)
    assert not await social.accept("alice", "bob", NOW), "once"
    assert await social.delete_request("carol", "bob")
    assert not await social.delete_request("carol", "bob")
    assert [f.user_id for f in await social.friends_of("bob")] == ["alice"]


async def test_block_severs_every_tie_and_is_idempotent(stores):
    _, social, _ = stores
    await social.request("alice", "bob", NOW)
    await social.accept("alice", "bob", NOW)
    await social.request("carol", "alice", NOW)
    assert await social.block("alice", "bob", NOW) == Severed(True, False, False)
    assert await social.block("alice", "carol", NOW) == Severed(False, False, True)
    assert await social.block("alice", "carol", NOW) == Severed(False, False, False)
    assert not await social.are_friends("alice", "bob")
    assert await social.requests_to("alice") == []
    assert [b.user_id for b in await social.blocked_by("alice")] == ["bob", "carol"]
    assert await social.has_blocked("alice", "bob") and not await social.has_blocked("bob", "alice")
    assert await social.block_between("bob", "alice") and not await social.block_between(
        "bob", "carol"
    )
    assert await social.unblock("alice", "bob")
    assert not await social.unblock("alice", "bob")


async def test_user_ids_are_exact(stores):
    _, social, _ = stores
    assert await social.user_exists("alice")
    assert not await social.user_exists("ALICE") and not await social.user_exists("alice ")


async def test_room_changes_append_a_contiguous_log(stores):
    _, _, rooms = stores
    async with rooms.create(group()) as tx:
        await tx.add_member("alice", "admin", NOW)
        assert (await tx.append("create", "alice", "alice", NOW)).seq == 1
    async with rooms.locked(group().id) as tx:
        await tx.add_invite("bob", "alice", NOW)
        await tx.append("invite", "alice", "bob", NOW)
    assert await rooms.invitees(group().id) == ["bob"]
    assert [(i.room_id, i.room_name, i.inviter_id) for i in await rooms.invites_of("bob")] == [
        (group().id, "team", "alice")
    ]
    async with rooms.locked(group().id) as tx:
        assert await tx.delete_invite("bob") and not await tx.delete_invite("bob")
        await tx.add_member("bob", "member", NOW + timedelta(seconds=1))
        await tx.append("join", "bob", "bob", NOW)
        await tx.set_role("bob", "admin")
        entry = await tx.append("role", "alice", "bob", NOW, role="admin")
    assert entry.seq == 4 and (await rooms.room(group().id)).log_seq == 4
    log = await rooms.log(group().id, after=1, limit=2)
    assert [(e.seq, e.action, e.target_id) for e in log] == [
        (2, "invite", "bob"),
        (3, "join", "bob"),
    ]
    assert log[0].device_id is None and log[0].signature is None
    assert [(m.user_id, m.role) for m in await rooms.members(group().id)] == [
        ("alice", "admin"),
        ("bob", "admin"),
    ]
    assert await rooms.room_ids_of("bob") == [group().id]
    [(room, role, count)] = await rooms.rooms_of("bob")
    assert (room.name, role, count) == ("team", "admin", 2)


async def test_a_failed_change_leaves_nothing_behind(stores):
    _, _, rooms = stores
    async with rooms.create(group()) as tx:
        await tx.add_member("alice", "admin", NOW)
        await tx.append("create", "alice", "alice", NOW)
    with pytest.raises(RuntimeError):
        async with rooms.locked(group().id) as tx:
            await tx.add_member("bob", "member", NOW)
            await tx.append("join", "bob", "bob", NOW)
            raise RuntimeError("refused")
    assert await rooms.member(group().id, "bob") is None
    assert (await rooms.room(group().id)).log_seq == 1
    assert [e.seq for e in await rooms.log(group().id, 0, 10)] == [1]


async def test_concurrent_changes_keep_the_log_contiguous(stores):
    _, _, rooms = stores
    async with rooms.create(group()) as tx:
        await tx.add_member("alice", "admin", NOW)
        await tx.append("create", "alice", "alice", NOW)

    async def role_flip(i: int) -> None:
        async with rooms.locked(group().id) as tx:
            await tx.append("role", "alice", "alice", NOW, role="admin" if i % 2 else "member")

    await asyncio.gather(*(role_flip(i) for i in range(12)))
    seqs = [e.seq for e in await rooms.log(group().id, 0, 100)]
    assert seqs == list(range(1, 14))


async def test_deleted_rooms_keep_only_their_log(stores):
    _, _, rooms = stores
    async with rooms.create(group()) as tx:
        await tx.add_member("alice", "admin", NOW)
        await tx.add_invite("bob", "alice", NOW)
        await tx.append("create", "alice", "alice", NOW)
        await tx.append("delete", "alice", None, NOW)
        await tx.mark_deleted(NOW)
    assert await rooms.room(group().id) is None
    async with rooms.locked(group().id) as tx:
        assert tx is None
    assert await rooms.members(group().id) == [] and await rooms.invites_of("bob") == []
    assert [e.action for e in await rooms.log(group().id, 0, 10)] == ["create", "delete"]


async def test_one_direct_room_per_pair(stores):
    _, _, rooms = stores
    key = "alice|bob"
    first = Room("r_" + "d" * 22, "direct", None, None, "alice", key, 0, NOW, None)
    async with rooms.create(first):
        pass
    with pytest.raises(DirectRoomExists):
        async with rooms.create(
            Room("r_" + "e" * 22, "direct", None, None, "bob", key, 0, NOW, None)
        ):
            pass
    assert (await rooms.direct_room(key)).id == first.id
    assert await rooms.accounts_newer_than(["alice", "bob"], NOW - timedelta(seconds=1)) is True
    assert await rooms.accounts_newer_than(["alice", "bob"], NOW) is False
    await rooms.retire_direct(first.id)
    assert await rooms.direct_room(key) is None
    assert await rooms.room(first.id) is not None, "retired, not deleted"


async def test_deleting_an_account_cascades_but_keeps_rooms_and_logs(stores):
    accounts, social, rooms = stores
    await social.request("alice", "bob", NOW)
    await social.accept("alice", "bob", NOW)
    await social.request("alice", "carol", NOW)
    await social.block("carol", "alice", NOW)
    async with rooms.create(group()) as tx:
        await tx.add_member("alice", "admin", NOW)
        await tx.add_member("bob", "member", NOW)
        await tx.add_invite("carol", "alice", NOW)
        await tx.append("create", "alice", "alice", NOW)
    await accounts.delete_user("alice", NOW)
    assert await social.friends_of("bob") == [] and await social.blocked_by("carol") == []
    assert await social.requests_to("carol") == []
    room = await rooms.room(group().id)
    assert room is not None and room.creator_id is None, "the room outlives its creator"
    assert [m.user_id for m in await rooms.members(group().id)] == ["bob"]
    assert await rooms.invites_of("carol") == []
    assert [e.actor_id for e in await rooms.log(group().id, 0, 10)] == ["alice"], "log intact"
