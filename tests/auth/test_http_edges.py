"""What every request gets: JSON errors, request ids, OpenAPI, and the event records."""

from __future__ import annotations

import asyncio
import contextlib
import json

from backend.common.events import EVENTS_QUEUE
from backend.common.typedefs import AUTH_SERVICE, STORES


async def test_unknown_path_and_method_are_json_errors(client):
    r = await client.get("/auth/nope")
    assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found")
    r = await client.get("/auth/signup")
    assert (r.status, (await r.json())["error"]["code"]) == (405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


async def test_request_id_is_echoed_or_made(client):
    r = await client.get("/auth/health", headers={"X-Request-ID": "trace-1234-abcd"})
    assert r.headers["X-Request-ID"] == "trace-1234-abcd"
    r = await client.get("/auth/health", headers={"X-Request-ID": "bad id with spaces"})
    assert len(r.headers["X-Request-ID"]) == 32
    r = await client.get("/auth/nope")
    assert r.headers["X-Request-ID"]


async def test_openapi_lists_every_route_with_schemas(client):
    r = await client.get("/auth/openapi.json")
    doc = await r.json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/auth/signup",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/getuser/{id}",
        "/auth/devices",
        "/auth/keys/upload",
        "/auth/keys/claim",
        "/auth/keys/query",
        "/auth/.well-known/jwks.json",
        "/auth/health",
        "/auth/account",
    ):
        assert path in doc["paths"], path
    signup_body = doc["paths"]["/auth/signup"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert doc["components"]["schemas"][signup_body["$ref"].rsplit("/", 1)[1]]["required"] == [
        "id",
        "passwd",
        "email",
    ]


async def test_auth_events_reach_the_queue_without_secrets(client, signup):
    acct = await signup()
    await client.post("/auth/login", json={"id": acct.id, "passwd": "wrong password"})
    await client.post("/auth/refresh", json={"refresh_token": acct.refresh})
    await client.post("/auth/logout", headers=acct.auth)
    async with asyncio.timeout(10):
        await client.app[AUTH_SERVICE].events.flush()

    mine = []
    queue = client.app[STORES].queue
    async with contextlib.aclosing(queue.consume(EVENTS_QUEUE.name, prefetch=500)) as deliveries:
        async for delivery in deliveries:
            raw = delivery.body.decode()
            await delivery.ack()
            for secret in (acct.password, acct.token, acct.refresh):
                assert secret not in raw
            for record in json.loads(raw):  # a batch of records per queue message
                if record["id"] == acct.id:
                    mine.append((record["category"], record["data"].get("result")))
            if ("logout", "success") in mine:
                break
    assert mine == [
        ("signup", "success"),
        ("signin", "success"),
        ("signin", "fail"),
        ("refresh", "success"),
        ("logout", "success"),
    ]
    assert set(record) == {"event_id", "datetime", "server", "category", "id", "data", "request_id"}
    assert record["server"] == "auth" and record["datetime"].endswith("Z")


async def test_log_lines_carry_no_password_or_token(client, signup, caplog):
    import logging

    from backend.common.logs import JsonFormatter

    caplog.set_level(logging.DEBUG)
    acct = await signup()
    await client.post("/auth/login", json={"id": acct.id, "passwd": "a wrong password"})
    await client.post("/auth/refresh", json={"refresh_token": acct.refresh})
    await client.get("/auth/getuser/x", headers={"Authorization": "Bearer forged.token.value"})
    await client.post("/auth/logout", headers=acct.auth)
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert lines, "the flow logged something"
    for line in lines:
        for secret in (
            acct.password,
            "a wrong password",
            acct.token,
            acct.refresh,
            "forged.token.value",
        ):
            assert secret not in line
