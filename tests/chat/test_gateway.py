"""The WebSocket gateway driven by real WebSocket clients, in both modes: the auth phase,
the Origin check, and frames after auth."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from backend.common.tokens import SigningKey, TokenIssuer
from backend.common.typedefs import AUTH_SERVICE
from backend.protocol.errors import CloseCode
from backend.protocol.frames import Presence
from tests.auth.device_keys import TestDevice
from tests.chat.ws_helpers import (
    STEP,
    account,
    closed_with,
    connect,
    recv,
    recv_after,
    registry,
)

# --- the auth phase -------------------------------------------------------------------------


async def test_auth_first_then_ping(app_client):
    client = await app_client()
    alice = await account(client)
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"id": 1, "type": "auth", "token": alice.token})
    assert await recv(ws) == {
        "id": 1,
        "type": "result",
        "success": True,
        "result": {"user": alice.id},
    }
    await ws.send_json({"id": 2, "type": "ping"})
    assert await recv(ws) == {"id": 2, "type": "result", "success": True, "result": {}}
    assert registry(client).online(alice.id)
    await ws.send_json({"id": 3, "type": "auth", "token": alice.token})
    assert (await recv(ws))["error"]["code"] == "invalid"  # once per connection
    await ws.close()
    for _ in range(100):
        if not registry(client).online(alice.id):
            break
        await asyncio.sleep(0.01)
    assert not registry(client).online(alice.id)


async def test_the_first_frame_must_be_auth(app_client):
    client = await app_client()
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"id": 1, "type": "ping"})
    reply = await recv(ws)
    assert reply["id"] == 1 and reply["error"]["code"] == "unauthorized"
    assert await closed_with(ws) == CloseCode.AUTH_FAILED


def _forged(settings_issuer: str, user: str) -> str:
    other = TokenIssuer([SigningKey.generate()], issuer=settings_issuer, ttl_seconds=900)
    return other.issue(sub=user, sid="s" * 16, role="user", audiences=["auth", "chat"])[0]


@pytest.mark.parametrize("kind", ["garbage", "forged", "expired", "other_audience"])
async def test_a_bad_token_closes_with_4001(app_client, kind):
    client = await app_client()
    alice = await account(client)
    issuer = client.app[AUTH_SERVICE].issuer
    if kind == "garbage":
        token, code = "not.a.token", "unauthorized"
    elif kind == "forged":
        token, code = _forged(issuer.issuer, alice.id), "unauthorized"
    elif kind == "expired":
        token = issuer.issue(
            sub=alice.id, sid="s" * 16, role="user", audiences=["chat"], now=time.time() - 7200
        )[0]
        code = "token_expired"
    else:  # a token for the auth service only is not a chat token
        token = issuer.issue(sub=alice.id, sid="s" * 16, role="user", audiences=["auth"])[0]
        code = "unauthorized"
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"id": 1, "type": "auth", "token": token})
    reply = await recv(ws)
    assert not reply["success"] and reply["error"]["code"] == code
    assert await closed_with(ws) == CloseCode.AUTH_FAILED
    assert not registry(client).online(alice.id)


async def test_no_auth_within_the_deadline_closes_with_4001(app_client):
    client = await app_client(auth_deadline_seconds=0.3)
    ws = await client.ws_connect("/chat/ws")
    started = time.monotonic()
    assert await closed_with(ws) == CloseCode.AUTH_FAILED
    assert time.monotonic() - started < STEP


async def test_a_token_in_the_url_is_ignored(app_client):
    client = await app_client(auth_deadline_seconds=0.3)
    alice = await account(client)
    ws = await client.ws_connect(
        "/chat/ws", params={"token": alice.token, "access_token": alice.token}
    )
    assert await closed_with(ws) == CloseCode.AUTH_FAILED
    ws = await client.ws_connect("/chat/ws", headers=alice.auth)  # nor a bearer header
    assert await closed_with(ws) == CloseCode.AUTH_FAILED


async def test_logout_refuses_later_connections_with_that_token(app_client):
    client = await app_client()
    alice = await account(client)
    ws = await connect(client, alice.token)
    await ws.close()
    r = await client.post("/auth/logout", headers=alice.auth)
    assert r.status == 200
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"id": 1, "type": "auth", "token": alice.token})
    assert (await recv(ws))["error"]["code"] == "unauthorized"
    assert await closed_with(ws) == CloseCode.AUTH_FAILED


async def test_a_device_must_be_registered_and_gets_its_to_device_pushes(app_client):
    client = await app_client()
    alice = await account(client)
    device = TestDevice(alice.id)
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"id": 1, "type": "auth", "token": alice.token, "device": "NOPE1234"})
    assert (await recv(ws))["error"]["code"] == "not_found"
    assert await closed_with(ws) == CloseCode.AUTH_FAILED

    r = await client.post("/auth/devices", json=device.registration(), headers=alice.auth)
    assert r.status == 201, await r.text()
    on_device = await connect(client, alice.token, device=device.device_id)
    elsewhere = await connect(client, alice.token)
    gateway = registry(client)
    assert len(gateway.connections_of_device(alice.id, device.device_id)) == 1
    event = Presence(user="someone", online=True)
    assert gateway.push_to_device(alice.id, device.device_id, event) == 1
    assert await recv(on_device) == {"type": "presence", "user": "someone", "online": True}
    await elsewhere.send_json({"id": 2, "type": "ping"})
    assert (await recv(elsewhere))["id"] == 2  # nothing was pushed to the other connection
    await on_device.close()
    await elsewhere.close()


# --- the Origin check ---------------------------------------------------------------------


async def test_a_browser_origin_must_be_allowed(app_client):
    client = await app_client(origins=["https://chat.example.org"])
    alice = await account(client)
    ws = await client.ws_connect("/chat/ws", origin="https://evil.example.com")
    assert await closed_with(ws) == CloseCode.BAD_ORIGIN
    ws = await connect(client, alice.token, origin="https://chat.example.org")
    await ws.send_json({"id": 2, "type": "ping"})
    assert (await recv(ws))["success"]
    await ws.close()


async def test_with_no_allowed_origins_every_browser_is_refused(app_client):
    client = await app_client()
    ws = await client.ws_connect("/chat/ws", origin="http://localhost")
    assert await closed_with(ws) == CloseCode.BAD_ORIGIN


async def test_a_plain_http_request_is_told_to_use_a_websocket(app_client):
    client = await app_client()
    r = await client.get("/chat/ws")
    assert r.status == 422
    assert "WebSocket" in (await r.json())["error"]["message"]


# --- frames after auth -------------------------------------------------------------------------


async def test_bad_and_unknown_frames_get_errors_and_the_connection_stays(app_client):
    client = await app_client()
    alice = await account(client)
    ws = await connect(client, alice.token)
    sent: list[tuple[str, str]] = [
        ('{"id": 2, "type": "no_such_type"}', "unknown_type"),
        ("not json", "bad_frame"),
        ("[1, 2, 3]", "bad_frame"),
        ('{"id": 3}', "bad_frame"),
        ('{"id": 4, "type": "ping", "extra": 1}', "bad_frame"),
        ('{"id": 5, "type": "typing", "room": "r1", "active": "yes"}', "bad_frame"),
        ('{"id": "6", "type": "ping"}', "bad_frame"),
        ("[" * 5000 + "]" * 5000, "bad_frame"),
        # A protocol type whose handler is not part of this server (yet): unknown here.
        ('{"id": 7, "type": "frobnicate", "room": "r1"}', "unknown_type"),
        ('{"id": 1, "type": "ping"}', "bad_frame"),  # ids must increase (auth used 1)
    ]
    for text, code in sent:
        await ws.send_str(text)
        reply = await recv(ws)
        assert reply["type"] == "result" and not reply["success"], text
        assert reply["error"]["code"] == code, (text, reply)
    assert (await recv_after(ws, {"id": 8, "type": "ping"}))["success"]
    await ws.send_bytes(b'{"id": 9, "type": "ping"}')
    assert (await recv(ws))["success"]  # binary UTF-8 JSON is read like text
    await ws.send_bytes(b"\xff\xfe")
    assert (await recv(ws))["error"]["code"] == "bad_frame"
    await ws.close()


async def test_an_error_reply_never_echoes_the_frame(app_client):
    client = await app_client()
    alice = await account(client)
    ws = await connect(client, alice.token)
    secret = "s3cr3t-" + "x" * 20
    await ws.send_json({"id": 2, "type": "auth", "token": secret, "nope": secret})
    reply = await recv(ws)
    assert reply["error"]["code"] == "bad_frame" and secret not in json.dumps(reply)
    await ws.close()


async def test_rate_limit_refuses_then_closes_with_4009(app_client):
    client = await app_client(rate_per_second=0.1, burst=3)
    alice = await account(client)
    ws = await connect(client, alice.token)
    for i in range(2, 5):  # the burst
        assert (await recv_after(ws, {"id": i, "type": "ping"}))["success"]
    assert (await recv_after(ws, {"id": 5, "type": "ping"}))["error"]["code"] == "rate_limited"
    for i in range(6, 12):
        await ws.send_json({"id": i, "type": "ping"})
    assert await closed_with(ws) == CloseCode.RATE_LIMITED


async def test_an_oversized_frame_closes_with_1009(app_client):
    client = await app_client(max_frame_bytes=1024)
    alice = await account(client)
    ws = await connect(client, alice.token)
    await ws.send_json(
        {"id": 2, "type": "typing", "room": "r" * 60, "active": True, "x": "y" * 2000}
    )
    assert await closed_with(ws) == CloseCode.TOO_BIG


async def test_an_oversized_first_frame_closes_with_1009(app_client):
    client = await app_client(max_frame_bytes=1024)
    ws = await client.ws_connect("/chat/ws")
    await ws.send_str("x" * 5000)
    assert await closed_with(ws) == CloseCode.TOO_BIG


async def test_the_upgrade_names_its_request_and_a_bad_handshake_gets_json(app_client):
    # The view answers its own errors (no middleware frame waits out the socket).
    client = await app_client()
    ws = await client.ws_connect("/chat/ws", headers={"X-Request-ID": "trace-ws-12345"})
    assert ws._response.headers["X-Request-ID"] == "trace-ws-12345"
    await ws.close()
    bad = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    r = await client.get("/chat/ws", headers={**bad, "Sec-WebSocket-Key": "not base64"})
    assert r.status == 422 and r.headers["X-Request-ID"]
    assert (await r.json())["error"]["code"]
