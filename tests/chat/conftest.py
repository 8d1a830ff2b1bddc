"""Fixtures shared by the chat tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backend.common.settings import Settings
from tests.chat.ws_helpers import client_factory


@pytest.fixture
def app_client(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> Any:
    """``await app_client(**chat_settings)``: auth, chat and the archiver on a test server."""
    return client_factory(aiohttp_client, make_settings)
