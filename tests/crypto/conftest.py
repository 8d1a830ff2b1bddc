"""Fixtures for the crypto core: a simulated server and devices on real encrypted stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.crypto.sim import SimDevice, SimServer


@pytest.fixture
def server() -> SimServer:
    return SimServer()


@pytest.fixture
def make_device(server: SimServer, tmp_path: Path) -> Iterator[Callable[..., SimDevice]]:
    """Make a device (``make_device("bob")`` → bob/BOB01); stores are closed afterwards."""
    made: list[SimDevice] = []

    def make(user: str, device: str | None = None, **kwargs: Any) -> SimDevice:
        dev = SimDevice(server, tmp_path, user, device or f"{user.upper()}01", **kwargs)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.store.close()
