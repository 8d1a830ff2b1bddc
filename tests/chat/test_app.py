"""The chat service mounts beside auth, and alone in cluster mode with auth's keys over HTTP."""

from __future__ import annotations

import pytest
from aiohttp import web

from backend.auth.app import create_app as create_auth_app
from backend.chat.app import create_app
from backend.common.settings import SettingsError
from backend.common.typedefs import GUARD
from backend.server import build_root
from tests.auth.conftest import Account, new_id


async def _account(client) -> Account:
    acct = Account(client, new_id(), "correct horse battery staple")
    r = await client.post(
        "/auth/signup",
        json={"id": acct.id, "passwd": acct.password, "email": f"{acct.id}@example.org"},
    )
    assert r.status == 200
    await acct.login()
    return acct


async def test_chat_health_and_openapi(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/chat/health")
    assert await r.json() == {"message": "alive"}
    r = await client.get("/chat/openapi.json")
    assert "/chat/health" in (await r.json())["paths"]


async def test_a_chat_node_reads_auth_keys_over_http(aiohttp_client, make_settings):
    settings = make_settings()
    auth = await aiohttp_client(create_auth_app(settings))
    jwks = str(auth.make_url("/auth/.well-known/jwks.json"))
    chat_settings = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"jwks_url": jwks})}
    )
    chat = await aiohttp_client(build_root(chat_settings, ["chat"]))
    acct = await _account(auth)
    guard = chat.app._subapps[0][GUARD]
    claims = await guard.check(acct.token)
    assert claims.sub == acct.id and "sealchat:chat" in claims.aud


async def test_a_chat_node_without_auth_needs_the_jwks_url(make_settings):
    runner = web.AppRunner(build_root(make_settings(), ["chat"]))
    try:
        with pytest.raises(SettingsError, match=r"auth\.jwks_url"):
            await runner.setup()
    finally:
        await runner.cleanup()
