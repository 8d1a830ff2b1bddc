"""The security suite: every module here sets ``pytestmark = pytest.mark.security``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backend.common.settings import Settings
from tests.chat.ws_helpers import client_factory


@pytest.fixture
def stack(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> Any:
    """``await stack(**chat_settings)``: auth, chat and the archiver on a loopback test server."""
    return client_factory(aiohttp_client, make_settings)
