"""Driving the WebSocket gateway with real clients: settings, accounts, frames, close codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from backend.chat.app import create_app
from backend.chat.gateway.registry import Registry
from backend.common.settings import Settings
from backend.common.typedefs import CHAT_RUNTIME
from tests.auth.conftest import Account, new_id

STEP = 5.0  # seconds any single expected frame may take to arrive


def with_chat(settings: Settings, *, origins: list[str] | None = None, **chat: Any) -> Settings:
    update: dict[str, Any] = {"chat": settings.chat.model_copy(update=chat)}
    if origins is not None:
        update["server"] = settings.server.model_copy(update={"allowed_origins": origins})
    return settings.model_copy(update=update)


def client_factory(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> Any:
    """``await make(**chat_settings)``: the chat service (with auth) on a test server."""

    async def make(*, origins: list[str] | None = None, **chat: Any) -> TestClient:
        settings = with_chat(make_settings(), origins=origins, **chat)
        return await aiohttp_client(create_app(settings))

    return make


async def account(client: TestClient) -> Account:
    acct = Account(client, new_id(), "correct horse battery staple")
    r = await client.post(
        "/auth/signup",
        json={"id": acct.id, "passwd": acct.password, "email": f"{acct.id}@example.org"},
    )
    assert r.status == 200, await r.text()
    await acct.login()
    return acct


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=STEP)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read (and drop) frames until the server closes; the close code."""
    while True:
        msg = await ws.receive(timeout=STEP)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return ws.close_code
        assert msg.type is WSMsgType.TEXT, msg


async def connect(
    client: TestClient, token: str | None = None, *, device: str | None = None, **kw: Any
) -> aiohttp.ClientWebSocketResponse:
    """A socket; authenticated when a token is given."""
    ws = await client.ws_connect("/chat/ws", **kw)
    if token is not None:
        frame: dict[str, Any] = {"id": 1, "type": "auth", "token": token}
        if device is not None:
            frame["device"] = device
        await ws.send_json(frame)
        reply = await recv(ws)
        assert reply["success"], reply
    return ws


def registry(client: TestClient) -> Registry:
    return client.app[CHAT_RUNTIME].gateway


async def recv_after(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json(frame)
    return await recv(ws)
