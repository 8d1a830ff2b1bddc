"""The E2EE key directory: devices, signed one-time keys, atomic claims."""

from __future__ import annotations

import asyncio

from tests.auth.device_keys import TestDevice


async def register(client, acct, device: TestDevice):
    return await client.post("/auth/devices", json=device.registration(), headers=acct.auth)


async def test_register_list_and_delete_devices(client, signup):
    alice = await signup()
    phone, laptop = TestDevice(alice.id), TestDevice(alice.id)
    assert (await register(client, alice, phone)).status == 201
    assert (await register(client, alice, laptop)).status == 201
    r = await client.get("/auth/devices", headers=alice.auth)
    listed = {d["device_id"]: d for d in (await r.json())["devices"]}
    assert set(listed) == {phone.device_id, laptop.device_id}
    assert listed[phone.device_id]["keys"] == {
        "ed25519": phone.ed25519,
        "curve25519": phone.curve25519,
    }

    r = await client.delete(f"/auth/devices/{phone.device_id}", headers=alice.auth)
    assert r.status == 200
    r = await client.get("/auth/devices", headers=alice.auth)
    assert [d["device_id"] for d in (await r.json())["devices"]] == [laptop.device_id]


async def test_device_signature_must_verify(client, signup):
    alice = await signup()
    dev = TestDevice(alice.id)
    body = dev.registration()
    body["keys"]["curve25519"] = TestDevice(alice.id).curve25519  # swapped after signing
    r = await client.post("/auth/devices", json=body, headers=alice.auth)
    assert (r.status, (await r.json())["error"]["code"]) == (422, "bad_signature")

    mallory = await signup()
    # A registration signed for alice cannot be replayed into mallory's account.
    r = await client.post(
        "/auth/devices", json=TestDevice(alice.id).registration(), headers=mallory.auth
    )
    assert r.status == 422


async def test_duplicate_device_and_foreign_delete(client, signup):
    alice, bob = await signup(), await signup()
    dev = TestDevice(alice.id)
    await register(client, alice, dev)
    r = await register(client, alice, dev)
    assert r.status == 409
    r = await client.delete(f"/auth/devices/{dev.device_id}", headers=bob.auth)
    assert r.status == 404, "bob cannot delete alice's device"
    r = await client.get("/auth/devices", headers=alice.auth)
    assert len((await r.json())["devices"]) == 1


async def test_upload_query_and_claim(client, signup):
    alice, bob = await signup(), await signup()
    dev = TestDevice(alice.id)
    await register(client, alice, dev)
    otks = {f"k{i}": dev.signed_key(f"k{i}") for i in range(3)}
    fallback = {"key_id": "fb1", **dev.signed_key("fb1", fallback=True)}
    r = await client.post(
        "/auth/keys/upload",
        json={"device_id": dev.device_id, "one_time_keys": otks, "fallback_key": fallback},
        headers=alice.auth,
    )
    assert (r.status, await r.json()) == (200, {"one_time_key_count": 3})

    r = await client.post(
        "/auth/keys/query", json={"users": [alice.id, bob.id, "ghost-user"]}, headers=bob.auth
    )
    devices = (await r.json())["devices"]
    assert [d["device_id"] for d in devices[alice.id]] == [dev.device_id]
    assert devices[bob.id] == [] and "ghost-user" not in devices

    claimed = []
    for _ in range(4):
        r = await client.post(
            "/auth/keys/claim",
            json={"devices": [{"user_id": alice.id, "device_id": dev.device_id}]},
            headers=bob.auth,
        )
        claimed.append((await r.json())["one_time_keys"][alice.id][dev.device_id])
    assert sorted(c["key_id"] for c in claimed[:3]) == ["k0", "k1", "k2"]
    assert claimed[3] == {
        "key_id": "fb1",
        "key": fallback["key"],
        "signature": fallback["signature"],
        "fallback": True,
    }
    r = await client.get(f"/auth/keys/count/{dev.device_id}", headers=alice.auth)
    assert await r.json() == {"one_time_key_count": 0}


async def test_one_time_keys_are_never_claimed_twice_under_concurrency(client, signup):
    alice = await signup()
    claimers = [await signup() for _ in range(3)]
    dev = TestDevice(alice.id)
    await register(client, alice, dev)
    n = 20
    r = await client.post(
        "/auth/keys/upload",
        json={
            "device_id": dev.device_id,
            "one_time_keys": {f"k{i}": dev.signed_key(f"k{i}") for i in range(n)},
        },
        headers=alice.auth,
    )
    assert r.status == 200
    ref = {"devices": [{"user_id": alice.id, "device_id": dev.device_id}]}

    async def claim(who):
        r = await client.post("/auth/keys/claim", json=ref, headers=who.auth)
        return (await r.json())["one_time_keys"].get(alice.id, {}).get(dev.device_id)

    results = await asyncio.gather(*(claim(claimers[i % 3]) for i in range(n + 10)))
    got = [k["key_id"] for k in results if k is not None]
    assert len(got) == n and len(set(got)) == n, "each key handed out exactly once"
    assert results.count(None) == 10, "no fallback key: the rest get nothing"


async def test_key_upload_rules(client, signup):
    alice, bob = await signup(), await signup()
    dev = TestDevice(alice.id)
    await register(client, alice, dev)
    good = dev.signed_key("a1")
    r = await client.post(
        "/auth/keys/upload",
        json={"device_id": dev.device_id, "one_time_keys": {"a1": good}},
        headers=bob.auth,
    )
    assert r.status == 404, "bob cannot upload keys for alice's device"

    forged = {"key": good["key"], "signature": TestDevice(alice.id).signed_key("a1")["signature"]}
    r = await client.post(
        "/auth/keys/upload",
        json={"device_id": dev.device_id, "one_time_keys": {"a1": forged}},
        headers=alice.auth,
    )
    assert r.status == 422

    for _ in range(2):  # uploading the same key twice is harmless
        r = await client.post(
            "/auth/keys/upload",
            json={"device_id": dev.device_id, "one_time_keys": {"a1": good}},
            headers=alice.auth,
        )
        assert await r.json() == {"one_time_key_count": 1}
    clash = dev.signed_key("a1")
    r = await client.post(
        "/auth/keys/upload",
        json={"device_id": dev.device_id, "one_time_keys": {"a1": clash}},
        headers=alice.auth,
    )
    assert r.status == 409

    too_many = {f"x{i}": good for i in range(101)}
    r = await client.post(
        "/auth/keys/upload",
        json={"device_id": dev.device_id, "one_time_keys": too_many},
        headers=alice.auth,
    )
    assert r.status == 422


async def test_deleting_an_account_removes_its_devices(client, signup):
    alice, bob = await signup(), await signup()
    await register(client, alice, TestDevice(alice.id))
    r = await client.delete(
        "/auth/account", json={"passwd": alice.password, "confirm": True}, headers=alice.auth
    )
    assert r.status == 200
    r = await client.post("/auth/keys/query", json={"users": [alice.id]}, headers=bob.auth)
    assert (await r.json())["devices"] == {}
