"""Regression tests for the fixes this suite led to in ``backend/common``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from backend.common.jwks_client import JwksUnavailable, RemoteJwks
from backend.common.tokens import SigningKey, keys_by_kid, write_secret_file

pytestmark = pytest.mark.security


@pytest.mark.parametrize(
    "document", [[], "keys", None, {"keys": "x"}, {"keys": [1, None, "k"]}, {"keys": {}}]
)
def test_a_malformed_jwks_document_yields_no_keys(document: Any) -> None:
    assert keys_by_kid(document) == {}


async def test_remote_jwks_reports_a_non_object_document_as_unavailable(aiohttp_server: Any):
    async def not_a_jwks(_: web.Request) -> web.Response:
        return web.json_response(["not", "a", "jwks"])

    app = web.Application()
    app.router.add_get("/jwks", not_a_jwks)
    server = await aiohttp_server(app)
    remote = RemoteJwks(str(server.make_url("/jwks")))
    with pytest.raises(JwksUnavailable, match="no Ed25519 signing key"):
        await remote.start(attempts=1)
    await remote.close()


def test_a_configured_signing_key_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    write_secret_file(path, SigningKey.generate().pem())
    assert SigningKey.load(path).kid
    os.chmod(path, 0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        SigningKey.load(path)


async def test_remote_jwks_polls_and_stops_polling_on_close(aiohttp_server: Any):
    keys = [SigningKey.generate()]

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [k.jwk for k in keys]})

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    server = await aiohttp_server(app)
    remote = RemoteJwks(str(server.make_url("/jwks")), refresh_every_seconds=0.05)
    await remote.start(attempts=1)
    keys.append(SigningKey.generate())  # published later, never asked for by a token
    for _ in range(100):
        if keys[1].kid in remote.keys():
            break
        await asyncio.sleep(0.02)
    assert keys[1].kid in remote.keys(), "the background read picked the new key up"
    await remote.close()
    assert remote._poller is None
