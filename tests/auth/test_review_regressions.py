"""Regressions for holes found in review: each test failed before its fix."""

from __future__ import annotations

from aiohttp import web

from backend.auth.app import create_app
from backend.common.middlewares import error_middleware, request_id_middleware
from tests.auth.device_keys import TestDevice


async def test_deleting_an_account_ends_every_session_and_a_reused_id_gets_none(client, signup):
    acct = await signup()
    other = await acct.client.post("/auth/login", json={"id": acct.id, "passwd": acct.password})
    other_token = (await other.json())["token"]
    r = await client.delete(
        "/auth/account", json={"passwd": acct.password, "confirm": True}, headers=acct.auth
    )
    assert r.status == 200
    r = await client.post(
        "/auth/signup", json={"id": acct.id, "passwd": "a new owner here", "email": "n@example.org"}
    )
    assert r.status == 200, "the id is free again"
    for token in (acct.token, other_token):
        r = await client.get("/auth/devices", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401, "no session of the deleted account reaches the new one"


async def test_logout_survives_a_restart(aiohttp_client, make_settings):
    settings = make_settings()
    first = await aiohttp_client(create_app(settings))
    body = {"id": "restart-user", "passwd": "restart password", "email": "r@example.org"}
    await first.post("/auth/signup", json=body)
    r = await first.post("/auth/login", json={"id": body["id"], "passwd": body["passwd"]})
    token = (await r.json())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await first.post("/auth/logout", headers=auth)).status == 200
    await first.close()

    second = await aiohttp_client(create_app(settings))
    r = await second.get("/auth/devices", headers=auth)
    assert r.status == 401, "a logged-out token stays dead after the server restarts"


async def test_one_key_id_for_a_one_time_and_a_fallback_key_is_refused(client, signup):
    alice = await signup()
    dev = TestDevice(alice.id)
    await client.post("/auth/devices", json=dev.registration(), headers=alice.auth)
    r = await client.post(
        "/auth/keys/upload",
        json={
            "device_id": dev.device_id,
            "one_time_keys": {"same": dev.signed_key("same")},
            "fallback_key": {"key_id": "same", **dev.signed_key("same", fallback=True)},
        },
        headers=alice.auth,
    )
    assert (r.status, (await r.json())["error"]["code"]) == (422, "invalid")


async def test_a_re_uploaded_claimed_key_is_not_handed_out_twice(client, signup):
    alice, bob = await signup(), await signup()
    dev = TestDevice(alice.id)
    await client.post("/auth/devices", json=dev.registration(), headers=alice.auth)
    upload = {"device_id": dev.device_id, "one_time_keys": {"k1": dev.signed_key("k1")}}
    await client.post("/auth/keys/upload", json=upload, headers=alice.auth)
    ref = {"devices": [{"user_id": alice.id, "device_id": dev.device_id}]}
    first = await (await client.post("/auth/keys/claim", json=ref, headers=bob.auth)).json()
    assert first["one_time_keys"][alice.id][dev.device_id]["key_id"] == "k1"
    r = await client.post("/auth/keys/upload", json=upload, headers=alice.auth)  # a retry
    assert await r.json() == {"one_time_key_count": 0}
    again = await (await client.post("/auth/keys/claim", json=ref, headers=bob.auth)).json()
    assert again["one_time_keys"] == {}


async def test_nobody_can_drain_another_users_keys(aiohttp_client, make_settings):
    client = await aiohttp_client(create_app(make_settings(claims_per_device=3)))
    owner = {"id": "key-owner", "passwd": "owner password", "email": "o@example.org"}
    thief = {"id": "key-thief", "passwd": "thief password", "email": "t@example.org"}
    tokens = {}
    for who in (owner, thief):
        await client.post("/auth/signup", json=who)
        r = await client.post("/auth/login", json={"id": who["id"], "passwd": who["passwd"]})
        tokens[who["id"]] = {"Authorization": f"Bearer {(await r.json())['token']}"}
    dev = TestDevice(owner["id"])
    await client.post("/auth/devices", json=dev.registration(), headers=tokens["key-owner"])
    keys = {f"k{i}": dev.signed_key(f"k{i}") for i in range(10)}
    fallback = {"key_id": "fb", **dev.signed_key("fb", fallback=True)}
    await client.post(
        "/auth/keys/upload",
        json={"device_id": dev.device_id, "one_time_keys": keys, "fallback_key": fallback},
        headers=tokens["key-owner"],
    )
    ref = {"devices": [{"user_id": owner["id"], "device_id": dev.device_id}]}
    got = []
    for _ in range(8):
        r = await client.post("/auth/keys/claim", json=ref, headers=tokens["key-thief"])
        got.append((await r.json())["one_time_keys"][owner["id"]][dev.device_id]["fallback"])
    assert got == [False] * 3 + [True] * 5, "past the limit only the fallback key is handed out"
    r = await client.get(f"/auth/keys/count/{dev.device_id}", headers=tokens["key-owner"])
    assert await r.json() == {"one_time_key_count": 7}


async def test_a_device_cannot_hoard_keys(aiohttp_client, make_settings):
    client = await aiohttp_client(create_app(make_settings(max_one_time_keys=5)))
    who = {"id": "hoarder", "passwd": "hoarder password", "email": "h@example.org"}
    await client.post("/auth/signup", json=who)
    r = await client.post("/auth/login", json={"id": who["id"], "passwd": who["passwd"]})
    auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
    dev = TestDevice(who["id"])
    await client.post("/auth/devices", json=dev.registration(), headers=auth)
    r = await client.post(
        "/auth/keys/upload",
        json={
            "device_id": dev.device_id,
            "one_time_keys": {f"k{i}": dev.signed_key(f"k{i}") for i in range(4)},
        },
        headers=auth,
    )
    assert r.status == 200
    r = await client.post(
        "/auth/keys/upload",
        json={
            "device_id": dev.device_id,
            "one_time_keys": {f"x{i}": dev.signed_key(f"x{i}") for i in range(2)},
        },
        headers=auth,
    )
    assert r.status == 422 and "holds 4" in (await r.json())["error"]["message"]


async def test_an_unreachable_store_is_a_retryable_503(aiohttp_client):
    import redis.exceptions

    async def broken(request: web.Request) -> web.Response:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    app = web.Application(middlewares=[request_id_middleware, error_middleware])
    app.router.add_get("/auth/broken", broken)
    client = await aiohttp_client(app)
    r = await client.get("/auth/broken")
    assert r.status == 503 and r.headers["Retry-After"] == "5"
    body = await r.json()
    assert body["error"]["code"] == "unavailable" and "6379" not in body["error"]["message"]


async def test_field_errors_say_what_to_type(client):
    r = await client.post(
        "/auth/signup", json={"id": "No Spaces", "passwd": "long enough", "email": "a@example.org"}
    )
    assert (await r.json())["error"][
        "message"
    ] == "id: must be 3 to 32 characters: a-z, 0-9, '_', '.', '-'"
