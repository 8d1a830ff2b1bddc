"""The auth app built for real, once on the embedded stores and once on the real servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backend.auth.app import create_app
from backend.common.settings import Settings, load_settings
from backend.stores.relational import migrate
from backend.stores.relational.engine import open_engine


@pytest.fixture(scope="session")
def migrated_mariadb(mariadb_url: str) -> str:
    async def run() -> None:
        engine = open_engine(mariadb_url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    return mariadb_url


MODES = [
    "embedded",
    pytest.param("cluster", marks=[pytest.mark.mariadb, pytest.mark.redis, pytest.mark.rabbitmq]),
]


@pytest.fixture(params=MODES)
def make_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one mode; keyword overrides go into the ``auth`` section."""
    base: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        # Tests pretend to come from several addresses through a trusted proxy on loopback.
        "server": {"trusted_proxies": ["127.0.0.1/32", "::1/128"]},
        "log": {"format": "json"},
    }
    if request.param == "cluster":
        key = tmp_path / "jwt.pem"
        from backend.common.tokens import SigningKey, write_secret_file

        write_secret_file(key, SigningKey.generate().pem())
        base |= {
            "mode": "cluster",
            "database": {"url": request.getfixturevalue("migrated_mariadb")},
            "redis": {
                "url": request.getfixturevalue("redis_url"),
                "prefix": request.getfixturevalue("redis_prefix") + uuid.uuid4().hex[:6] + ":",
            },
            "rabbitmq": {"url": request.getfixturevalue("rabbitmq_url")},
            "auth": {"signing_keys": [str(key)]},
        }

    def make(**auth: Any) -> Settings:
        data = dict(base)
        data["auth"] = {**base.get("auth", {}), **auth}
        return load_settings(None, data, environ={})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(settings))


def new_id() -> str:
    return "u" + uuid.uuid4().hex[:12]


class Account:
    """A signed-up user with a helper to log in."""

    def __init__(self, client: TestClient, uid: str, password: str) -> None:
        self.client, self.id, self.password = client, uid, password
        self.token = ""
        self.refresh = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def login(self, address: str = "10.9.8.7") -> dict[str, Any]:
        r = await self.client.post(
            "/auth/login",
            json={"id": self.id, "passwd": self.password},
            headers={"X-Forwarded-For": address},
        )
        assert r.status == 200, await r.text()
        body = await r.json()
        self.token, self.refresh = body["token"], body["refresh_token"]
        return body


@pytest.fixture
def signup(client: TestClient) -> Callable[..., Any]:
    async def make(login: bool = True) -> Account:
        acct = Account(client, new_id(), "correct horse battery staple")
        r = await client.post(
            "/auth/signup",
            json={"id": acct.id, "passwd": acct.password, "email": f"{acct.id}@example.org"},
        )
        assert r.status == 200, await r.text()
        if login:
            await acct.login()
        return acct

    return make
