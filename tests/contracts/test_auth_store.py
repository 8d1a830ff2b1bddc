"""The relational port's contract: AuthStore behaves the same on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from backend.auth.store import AuthStore, Device, KeyUpload, OneTimeKey, RefreshOutcome, User
from tests.contracts.relational import BACKENDS, fresh_engine, migrated

NOW = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    async for engine in fresh_engine(request, tmp_path):
        yield AuthStore(await migrated(engine))


def user(uid: str = "alice") -> User:
    return User(id=uid, email=f"{uid}@example.org", password_hash="$argon2id$fake", created_at=NOW)


def device(uid: str = "alice", did: str = "DEV1") -> Device:
    return Device(uid, did, "phone", "E" * 43, "C" * 43, "S" * 86, NOW)


async def test_users_round_trip_with_aware_datetimes(store):
    assert await store.create_user(user())
    assert not await store.create_user(user()), "duplicate id"
    got = await store.get_user("alice")
    assert got == user()
    assert got.created_at.tzinfo is not None and got.created_at.microsecond == 123456
    assert await store.get_user("bob") is None
    assert await store.existing_users(["alice", "bob"]) == {"alice"}
    await store.set_password_hash("alice", "$argon2id$new")
    assert (await store.get_user("alice")).password_hash == "$argon2id$new"


async def test_ids_are_case_sensitive_and_exact(store):
    await store.create_user(user("alice"))
    assert await store.get_user("ALICE") is None
    assert await store.get_user("alice ") is None


async def test_refresh_rotation_and_reuse(store):
    await store.create_user(user())
    await store.create_family("fam1", "alice", "h1", NOW, NOW + timedelta(days=1))
    outcome, fam = await store.rotate_refresh("h1", "h2", NOW)
    assert outcome is RefreshOutcome.OK and fam.id == "fam1" and fam.user_id == "alice"
    outcome, fam = await store.rotate_refresh("h1", "h3", NOW)
    assert outcome is RefreshOutcome.REUSED and fam.id == "fam1"
    assert (await store.rotate_refresh("nope", "h4", NOW))[0] is RefreshOutcome.UNKNOWN
    await store.revoke_family("fam1", "reuse", NOW)
    assert (await store.get_family("fam1")).revoked_at == NOW
    outcome, fam = await store.rotate_refresh("h2", "h5", NOW)
    assert outcome is RefreshOutcome.OK and fam.revoked_at is not None, (
        "caller must check revocation"
    )


async def test_refresh_rotation_is_single_use_under_concurrency(store):
    await store.create_user(user())
    await store.create_family("fam1", "alice", "h1", NOW, NOW + timedelta(days=1))
    outcomes = await asyncio.gather(*(store.rotate_refresh("h1", f"n{i}", NOW) for i in range(8)))
    assert sorted(o.value for o, _ in outcomes) == ["ok"] + ["reused"] * 7


async def test_expired_families_are_purged(store):
    await store.create_user(user())
    await store.create_family(
        "old", "alice", "h1", NOW - timedelta(days=40), NOW - timedelta(days=10)
    )
    await store.create_family("new", "alice", "h2", NOW, NOW + timedelta(days=30))
    await store.create_family(
        "gone", "alice", "h3", NOW - timedelta(days=1), NOW + timedelta(days=1)
    )
    await store.revoke_family("gone", "logout", NOW - timedelta(hours=1))
    await store.create_family("just", "alice", "h4", NOW, NOW + timedelta(days=1))
    await store.revoke_family("just", "logout", NOW)
    assert await store.revoked_since(NOW - timedelta(minutes=16)) == ["just"]
    assert await store.purge_families(NOW, revoked_before=NOW - timedelta(minutes=16)) == 2
    assert await store.get_family("old") is None and await store.get_family("gone") is None
    assert await store.get_family("new") is not None and await store.get_family("just") is not None


async def test_devices(store):
    await store.create_user(user())
    await store.create_user(user("bob"))
    assert await store.add_device(device())
    assert not await store.add_device(device()), "duplicate device"
    assert await store.add_device(device("bob", "DEV1")), "device ids are per user"
    assert await store.get_device("alice", "DEV1") == device()
    assert [d.user_id for d in await store.devices_of(["alice", "bob"])] == ["alice", "bob"]
    assert await store.devices_of([]) == []
    assert not await store.delete_device("alice", "NOPE")
    assert await store.delete_device("alice", "DEV1")
    assert await store.get_device("alice", "DEV1") is None


async def test_keys_claim_fallback_and_clash(store):
    await store.create_user(user())
    await store.add_device(device())
    keys = [OneTimeKey(f"k{i}", f"K{i}".ljust(43, "x"), "S" * 86, False) for i in range(3)]
    assert await store.add_keys("alice", "DEV1", keys, NOW) == KeyUpload([], 3)
    assert await store.add_keys("alice", "DEV1", keys[:1], NOW) == KeyUpload([], 0), "harmless"
    clash = OneTimeKey("k0", "Z" * 43, "S" * 86, False)
    assert await store.add_keys("alice", "DEV1", [clash], NOW) == KeyUpload(["k0"], 0)
    as_fallback = OneTimeKey("k0", keys[0].public_key, "S" * 86, True)
    assert await store.add_keys("alice", "DEV1", [as_fallback], NOW) == KeyUpload(["k0"], 0)
    assert await store.count_one_time_keys("alice", "DEV1") == 3
    await store.add_keys("alice", "DEV1", [OneTimeKey("fb1", "F" * 43, "S" * 86, True)], NOW)
    await store.add_keys("alice", "DEV1", [OneTimeKey("fb2", "G" * 43, "S" * 86, True)], NOW)
    assert (await store.claim_key("alice", "DEV1", NOW, fallback_only=True)).key_id == "fb2"
    claimed = [await store.claim_key("alice", "DEV1", NOW) for _ in range(5)]
    assert [k.key_id for k in claimed] == ["k0", "k1", "k2", "fb2", "fb2"], "newest fallback, kept"
    assert await store.claim_key("alice", "NOPE", NOW) is None


async def test_a_claimed_key_uploaded_again_is_not_handed_out_again(store):
    await store.create_user(user())
    await store.add_device(device())
    key = OneTimeKey("k1", "K" * 43, "S" * 86, False)
    await store.add_keys("alice", "DEV1", [key], NOW)
    assert (await store.claim_key("alice", "DEV1", NOW)).key_id == "k1"
    assert await store.add_keys("alice", "DEV1", [key], NOW) == KeyUpload([], 0)
    assert await store.count_one_time_keys("alice", "DEV1") == 0
    assert await store.claim_key("alice", "DEV1", NOW) is None


async def test_concurrent_claims_hand_out_each_key_once(store):
    await store.create_user(user())
    await store.add_device(device())
    n = 30
    await store.add_keys(
        "alice", "DEV1", [OneTimeKey(f"k{i}", "K" * 43, "S" * 86, False) for i in range(n)], NOW
    )
    got = await asyncio.gather(*(store.claim_key("alice", "DEV1", NOW) for _ in range(n + 5)))
    ids = [k.key_id for k in got if k is not None]
    assert len(ids) == n == len(set(ids))


async def test_deleting_a_user_cascades(store):
    await store.create_user(user())
    await store.add_device(device())
    await store.add_keys("alice", "DEV1", [OneTimeKey("k", "K" * 43, "S" * 86, False)], NOW)
    await store.create_family("fam", "alice", "h", NOW, NOW + timedelta(days=1))
    await store.create_family("ended", "alice", "h0", NOW, NOW + timedelta(days=1))
    await store.revoke_family("ended", "logout", NOW)
    seen: list[tuple[list[str], bool]] = []

    async def before_commit(sids: list[str]) -> None:
        # Another connection still sees the account: the transaction has not committed.
        seen.append((sids, await store.get_user("alice") is not None))

    assert await store.delete_user("alice", NOW, before_commit) == ["fam"]
    assert seen == [(["fam"], True)]
    assert await store.delete_user("alice", NOW, before_commit) == []
    assert len(seen) == 1, "nothing deleted, nothing to end"
    assert await store.get_device("alice", "DEV1") is None
    assert (await store.get_family("fam")).revoked_at == NOW, "kept, revoked, until purged"
    await store.create_user(user())
    await store.add_device(device())
    assert await store.claim_key("alice", "DEV1", NOW) is None, "old keys are gone"
