"""One real ``sealchatd all`` for the whole session (each test uses its own users)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.tui.harness import LocalServer, Peer, make_app, new_user, sign_up, signed_in, until
from tests.tui.scene import SIZE, Scene, befriend_in_ui
from tui.widgets.chat_view import ChatView
from tui.widgets.lists import FriendList


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    srv = LocalServer(tmp_path_factory.mktemp("sealchatd"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def scene(server: LocalServer, tmp_path: Path) -> AsyncIterator[Scene]:
    """Alice (TUI) and Bob (a peer device), friends, their 1:1 room open."""
    bob = await Peer.join(server.url, tmp_path)
    alice = new_user("a")
    app = make_app(tmp_path / "alice")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await sign_up(pilot, alice, server.url)
            await signed_in(pilot)
            await befriend_in_ui(pilot, bob, alice)
            # Choosing a friend opens (or makes) the 1:1 room with them.
            app.screen.query_one(FriendList).focus()
            await pilot.press("enter")
            await until(pilot, lambda: app.screen.query_one(ChatView).room is not None)
            yield Scene(pilot, bob)
    finally:
        await bob.close()
