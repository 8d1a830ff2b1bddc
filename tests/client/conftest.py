"""Fixtures of the client-core tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backend.common.settings import Settings
from tests.chat.ws_helpers import client_factory


@pytest.fixture
async def server(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> TestClient:
    """auth + chat + archiver on a loopback port, in the embedded and the cluster mode."""
    return await client_factory(aiohttp_client, make_settings)()
