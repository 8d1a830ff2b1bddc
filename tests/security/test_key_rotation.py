"""Signing-key rotation with an overlap, and services other than auth hold no signing key.

The verifying side is what ``backend/server.py`` wires for a node without auth: a
``RemoteJwks`` reading auth's JWKS over HTTP, a ``TokenVerifier`` and a ``Guard``. Its
intervals are shortened here so that the documented procedure (publish, wait, move first,
retire) runs in seconds; an attacker floods it with unknown kids throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backend.common.auth_guard import Guard
from backend.common.errors import ApiError
from backend.common.jwks_client import RemoteJwks
from backend.common.settings import Settings
from backend.common.tokens import SigningKey, TokenVerifier, write_secret_file
from backend.common.typedefs import AUTH_SERVICE, GUARD
from backend.server import build_root
from backend.stores.ephemeral.memory import MemoryKeyValue
from tests.security.forgery import claims
from tests.security.helpers import PASSWORD, report

pytestmark = [
    pytest.mark.security,
    pytest.mark.parametrize("make_settings", ["embedded"], indirect=True),
]

POLL = 0.3  # the verifier's background JWKS read (30 s in production)


def key_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pem"
    write_secret_file(path, SigningKey.generate().pem())
    return path


@contextlib.asynccontextmanager
async def auth_node(settings: Settings, keys: list[Path], port: int) -> AsyncIterator[TestClient]:
    auth = settings.auth.model_copy(update={"signing_keys": keys})
    app = build_root(settings.model_copy(update={"auth": auth}), ["auth"])
    client = TestClient(TestServer(app, port=port))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_rotation_with_overlap_fails_no_request(
    make_settings: Callable[..., Settings], tmp_path, unused_tcp_port
):
    settings = make_settings()
    old, new = key_file(tmp_path, "old"), key_file(tmp_path, "new")
    old_kid, new_kid = SigningKey.load(old).kid, SigningKey.load(new).kid
    port = unused_tcp_port
    remote = RemoteJwks(
        f"http://127.0.0.1:{port}/auth/.well-known/jwks.json",
        min_refresh_seconds=30.0,  # as in production: the flood keeps on-demand reads rare
        refresh_every_seconds=POLL,
    )
    guard = Guard(
        TokenVerifier(remote.keys, issuer="sealchat", service="chat"),
        MemoryKeyValue(),
        remote.refresh,
    )
    user = "u" + uuid.uuid4().hex[:12]
    tokens: list[tuple[str, str]] = []  # (phase, token) still within their lifetime
    stats = {"requests": 0, "failed": 0, "forged_refused": 0}
    stop = asyncio.Event()

    async def flood() -> None:
        attacker = Ed25519PrivateKey.generate()
        while not stop.is_set():
            forged = jwt.encode(
                claims(user), attacker, algorithm="EdDSA", headers={"kid": uuid.uuid4().hex}
            )
            with contextlib.suppress(ApiError):
                await guard.check(forged)
                raise AssertionError("a forged kid was accepted")
            stats["forged_refused"] += 1
            await asyncio.sleep(0.005)

    async def use_every_token(seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            for phase, token in list(tokens):
                stats["requests"] += 1
                try:
                    assert (await guard.check(token)).sub == user
                except ApiError as exc:
                    stats["failed"] += 1
                    raise AssertionError(f"{phase} token refused: {exc.message}") from None
            await asyncio.sleep(0.02)

    async def phase(name: str, keys: list[Path], seconds: float, *, signing: str) -> None:
        async with auth_node(settings, keys, port) as node:
            if name == "1 old only":
                r = await node.post(
                    "/auth/signup",
                    json={"id": user, "passwd": PASSWORD, "email": f"{user}@example.org"},
                )
                assert r.status == 200
                await remote.start(attempts=3, delay=0.2)
            r = await node.post("/auth/login", json={"id": user, "passwd": PASSWORD})
            token = (await r.json())["token"]
            assert jwt.get_unverified_header(token)["kid"] == signing
            tokens.append((name, token))
            await use_every_token(seconds)

    flooder = asyncio.create_task(flood())
    try:
        await phase("1 old only", [old], 0.5, signing=old_kid)
        # 2: the new key is published (not signing) and the wait outlasts the verifier's poll
        await phase("2 publish new", [old, new], 3 * POLL, signing=old_kid)
        # 3: the new key signs; tokens of the old key stay valid (it is still listed)
        await phase("3 new signs", [new, old], 1.0, signing=new_kid)
        # 4: old tokens have expired (ttl + leeway in production): stop using them, retire it
        tokens[:] = [(p, t) for p, t in tokens if p.startswith("3")]
        await phase("4 old retired", [new], 3 * POLL, signing=new_kid)
    finally:
        stop.set()
        await flooder
        await remote.close()
    report("key rotation", phases=4, **stats)
    assert stats["failed"] == 0 and stats["requests"] > 100
    assert old_kid not in remote.keys(), "a retired key is dropped by the next poll"


async def test_chat_node_holds_no_signing_key(
    make_settings: Callable[..., Settings], tmp_path, unused_tcp_port
):
    settings = make_settings()
    key = key_file(tmp_path, "auth")
    async with auth_node(settings, [key], unused_tcp_port) as auth:
        user = "u" + uuid.uuid4().hex[:12]
        await auth.post(
            "/auth/signup", json={"id": user, "passwd": PASSWORD, "email": f"{user}@example.org"}
        )
        token = (
            await (await auth.post("/auth/login", json={"id": user, "passwd": PASSWORD})).json()
        )["token"]
        # The chat node is told about a key file it must never open: unreadable to everyone.
        secret = tmp_path / "never-read.pem"
        write_secret_file(secret, SigningKey.generate().pem())
        secret.chmod(0o000)
        chat_auth = settings.auth.model_copy(
            update={
                "jwks_url": f"http://127.0.0.1:{unused_tcp_port}/auth/.well-known/jwks.json",
                "signing_keys": [secret],
            }
        )
        chat_settings = settings.model_copy(
            update={"auth": chat_auth, "data_dir": tmp_path / "chat-node"}
        )
        checked = []
        for service, probe in (("chat", "/chat/rooms"), ("log", "/log/health")):
            node = TestClient(TestServer(build_root(chat_settings, [service])))
            await node.start_server()
            try:
                assert AUTH_SERVICE not in node.app, f"no token issuer in a {service} node"
                r = await node.get(probe, headers={"Authorization": f"Bearer {token}"})
                assert r.status == 200, await r.text()
                guard: Any = node.app._subapps[0][GUARD]  # the service sub-app's guard
                keys = guard.verifier._keys()
                assert keys and all(
                    set(k) <= {"kty", "crv", "x", "kid", "alg", "use"} for k in keys.values()
                ), "public keys only"
                checked.append(service)
            finally:
                await node.close()
        assert checked == ["chat", "log"]
    forbidden = {"SigningKey", "TokenIssuer", "load_or_create_key", "signing_keys"}
    leaks = []
    for package in ("chat", "log"):
        for path in (Path(__file__).parents[2] / "backend" / package).rglob("*.py"):
            text = path.read_text()
            leaks += [f"{path.name}: {name}" for name in forbidden if name in text]
    report(
        "chat/log hold no signing key",
        nodes_started_with_an_unreadable_key_file=len(checked),
        chat_node_jwks_keys=len(keys),
        private_parts=0,
        source_refs=len(leaks),
    )
    assert leaks == []
