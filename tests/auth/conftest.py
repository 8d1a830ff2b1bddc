"""The auth app built for real, once on the embedded stores and once on the real servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backend.auth.app import create_app
from backend.common.settings import Settings


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
