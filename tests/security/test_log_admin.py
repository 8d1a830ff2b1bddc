"""The log service's event queries answer operators (``auth.admins``) only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backend.common.settings import Settings
from backend.common.typedefs import AUTH_SERVICE
from backend.server import build_root
from tests.security.forgery import claims
from tests.security.helpers import PASSWORD, report

pytestmark = pytest.mark.security


async def login(client: Any, uid: str) -> str:
    body = {"id": uid, "passwd": PASSWORD, "email": f"{uid}@example.org"}
    assert (await client.post("/auth/signup", json=body)).status == 200
    r = await client.post("/auth/login", json={"id": uid, "passwd": PASSWORD})
    return str((await r.json())["token"])


async def test_only_operators_read_the_event_log(
    aiohttp_client: Any, make_settings: Callable[..., Settings]
):
    admin = "op" + uuid.uuid4().hex[:10]
    client = await aiohttp_client(build_root(make_settings(admins=[admin]), ["auth", "log"]))
    user_token, admin_token = (
        await login(client, "u" + uuid.uuid4().hex[:12]),
        await login(client, admin),
    )
    issuer = client.app[AUTH_SERVICE].issuer
    kid = issuer.jwks()["keys"][0]["kid"]
    attacker = Ed25519PrivateKey.generate()
    tries = {
        "no token": (None, 401),
        "a user's token": (user_token, 403),
        "a user's token claiming admin": (
            jwt.encode(
                claims("mallory", aud=["sealchat:auth", "sealchat:log"]),
                attacker,
                algorithm="EdDSA",
                headers={"kid": kid},
            ),
            401,
        ),
        "admin role without the log audience": (
            issuer.issue(sub=admin, sid="s" * 32, role="admin", audiences=["auth", "chat"])[0],
            403,
        ),
        "an operator": (admin_token, 200),
    }
    got = {}
    for name, (token, _) in tries.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        got[name] = (await client.get("/log/events", headers=headers)).status
    report("log queries", **{k.replace(" ", "_").replace("'", ""): v for k, v in got.items()})
    assert got == {name: expected for name, (_, expected) in tries.items()}
