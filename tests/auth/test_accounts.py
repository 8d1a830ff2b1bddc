"""Sign-up, log-in, get-user, throttling and account deletion through the real HTTP API."""

from __future__ import annotations

import asyncio
import json

from argon2 import extract_parameters

from backend.auth.app import create_app
from backend.auth.store import AuthStore
from backend.common.typedefs import STORES
from tests.auth.conftest import new_id


async def test_health_is_the_seed_answer(client):
    r = await client.get("/auth/health")
    assert r.status == 200
    assert await r.json() == {"message": "alive"}


async def test_signup_login_getuser_seed_flow(client):
    uid = new_id()
    r = await client.post(
        "/auth/signup", json={"id": uid, "passwd": "s3cret-pass", "email": "a@example.org"}
    )
    assert (r.status, await r.json()) == (200, {"message": "signup successful"})

    r = await client.post("/auth/login", json={"id": uid, "passwd": "s3cret-pass"})
    assert r.status == 200
    body = await r.json()
    assert set(body) >= {"token", "refresh_token", "expires_in"}
    assert body["expires_in"] == 900

    r = await client.get(
        f"/auth/getuser/{uid}", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert (r.status, await r.json()) == (200, {"id": uid})


async def test_getuser_needs_a_token_and_reveals_only_the_id(client, signup):
    alice, bob = await signup(), await signup(login=False)
    r = await client.get(f"/auth/getuser/{bob.id}")
    assert r.status == 401
    assert (await r.json())["error"]["code"] == "unauthorized"
    r = await client.get(f"/auth/getuser/{bob.id}", headers=alice.auth)
    assert await r.json() == {"id": bob.id}
    r = await client.get("/auth/getuser/nobody-here", headers=alice.auth)
    assert r.status == 404


async def test_duplicate_id_is_409(client, signup):
    acct = await signup(login=False)
    r = await client.post(
        "/auth/signup", json={"id": acct.id, "passwd": "another-pass", "email": "x@example.org"}
    )
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "conflict"


async def test_signup_validation(client):
    cases = [
        ({"id": "AB", "passwd": "long enough", "email": "a@example.org"}, "id"),
        ({"id": "Upper", "passwd": "long enough", "email": "a@example.org"}, "id"),
        ({"id": "x" * 33, "passwd": "long enough", "email": "a@example.org"}, "id"),
        ({"id": "fine_id", "passwd": "short", "email": "a@example.org"}, "passwd"),
        ({"id": "fine_id", "passwd": "long enough", "email": "not-an-email"}, "email"),
        ({"id": "fine_id", "passwd": "long enough"}, "email"),
        (
            {"id": "fine_id", "passwd": "long enough", "email": "a@example.org", "role": "admin"},
            "role",
        ),
        ({"id": 5, "passwd": "long enough", "email": "a@example.org"}, "id"),
    ]
    for body, field in cases:
        r = await client.post("/auth/signup", json=body)
        assert r.status == 422, body
        err = (await r.json())["error"]
        assert err["code"] == "invalid"
        assert err["message"].startswith(field), err
        assert "long enough" not in err["message"]  # never echo a password back


async def test_bad_json_and_oversize_bodies(client):
    r = await client.post(
        "/auth/signup", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (r.status, (await r.json())["error"]["code"]) == (400, "bad_json")
    r = await client.post("/auth/signup", data=b"[1,2]")
    assert (r.status, (await r.json())["error"]["code"]) == (400, "bad_json")
    r = await client.post("/auth/signup", data=b"\xff\xfe")
    assert r.status == 400
    big = json.dumps({"id": "abc", "passwd": "x" * 100_000, "email": "a@example.org"})
    r = await client.post("/auth/signup", data=big)
    assert (r.status, (await r.json())["error"]["code"]) == (413, "too_large")


async def test_unknown_user_and_wrong_password_look_identical(client, signup):
    acct = await signup(login=False)
    wrong = await client.post("/auth/login", json={"id": acct.id, "passwd": "wrong password"})
    unknown = await client.post("/auth/login", json={"id": new_id(), "passwd": "wrong password"})
    assert wrong.status == unknown.status == 401
    assert await wrong.read() == await unknown.read()
    assert (await wrong.json())["error"]["code"] == "bad_credentials"


async def test_login_throttled_per_account_and_address_but_real_user_gets_in(
    client, signup, make_settings
):
    acct = await signup(login=False)
    limit = make_settings().auth.throttle_per_account_ip
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    statuses = []
    for _ in range(limit + 3):
        r = await client.post(
            "/auth/login", json={"id": acct.id, "passwd": "guess"}, headers=attacker
        )
        statuses.append(r.status)
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    r = await client.post(
        "/auth/login", json={"id": acct.id, "passwd": acct.password}, headers=attacker
    )
    assert r.status == 429, "the right password from the throttled address is refused too"
    window = make_settings().auth.throttle_window_seconds
    assert 0 < int(r.headers["Retry-After"]) <= window
    assert (await r.json())["error"]["message"].startswith("too many failed logins: try again in")
    await acct.login(address="198.51.100.20")  # the real user, elsewhere


async def test_password_spraying_from_one_address_is_throttled(client, signup, make_settings):
    limit = make_settings().auth.throttle_per_ip
    sprayer = {"X-Forwarded-For": "203.0.113.99"}
    codes = []
    for _ in range(limit + 2):
        r = await client.post(
            "/auth/login", json={"id": new_id(), "passwd": "Summer2026!"}, headers=sprayer
        )
        codes.append(r.status)
    assert codes[:limit] == [401] * limit
    assert codes[-1] == 429


async def test_rehash_on_login_when_parameters_rise(aiohttp_client, make_settings):
    low = await aiohttp_client(create_app(make_settings()))
    uid = new_id()
    await low.post(
        "/auth/signup", json={"id": uid, "passwd": "rehash me please", "email": "r@example.org"}
    )
    await low.close()

    high = await aiohttp_client(create_app(make_settings(argon2_time_cost=3)))
    store = AuthStore(high.app[STORES].engine)
    assert extract_parameters((await store.get_user(uid)).password_hash).time_cost == 2
    r = await high.post("/auth/login", json={"id": uid, "passwd": "rehash me please"})
    assert r.status == 200
    params = extract_parameters((await store.get_user(uid)).password_hash)
    assert (params.time_cost, params.memory_cost, params.type.name) == (3, 19456, "ID")


async def test_delete_account_needs_confirm_and_password(client, signup):
    acct = await signup()
    r = await client.delete("/auth/account", json={"passwd": acct.password}, headers=acct.auth)
    assert r.status == 422 and "confirm" in (await r.json())["error"]["message"]
    r = await client.delete(
        "/auth/account", json={"passwd": "wrong one", "confirm": True}, headers=acct.auth
    )
    assert r.status == 401
    r = await client.delete(
        "/auth/account", json={"passwd": acct.password, "confirm": True}, headers=acct.auth
    )
    assert r.status == 200
    r = await client.post("/auth/login", json={"id": acct.id, "passwd": acct.password})
    assert r.status == 401
    r = await client.get(f"/auth/getuser/{acct.id}", headers=acct.auth)
    assert r.status == 401, "the deleted account's token is dead"


async def test_concurrent_signups_of_one_id_make_one_account(client):
    uid = new_id()
    body = {"id": uid, "passwd": "race condition", "email": "r@example.org"}
    results = await asyncio.gather(*(client.post("/auth/signup", json=body) for _ in range(5)))
    assert sorted(r.status for r in results) == [200, 409, 409, 409, 409]
