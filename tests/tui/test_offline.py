"""The connection line and the outbox: nothing typed while the server is down is lost."""

from __future__ import annotations

from pathlib import Path

from tests.tui.harness import (
    LocalServer,
    Peer,
    make_app,
    new_user,
    screen_text,
    sign_up,
    signed_in,
    until,
)
from tests.tui.scene import Scene, befriend_in_ui
from tui.widgets.chat_view import ChatView
from tui.widgets.lists import FriendList
from tui.widgets.status import ConnectionStatus


async def test_typed_while_offline_is_sent_after_reconnect(tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "server")
    server.start()
    bob: Peer | None = None
    try:
        bob = await Peer.join(server.url, tmp_path)
        app = make_app(tmp_path / "alice")
        async with app.run_test(size=(100, 30)) as pilot:
            await sign_up(pilot, new_user("a"), server.url)
            await signed_in(pilot)
            await befriend_in_ui(pilot, bob, app.session.user)  # type: ignore[union-attr]
            app.screen.query_one(FriendList).focus()
            await pilot.press("enter")
            await until(pilot, lambda: app.screen.query_one(ChatView).room is not None)
            scene = Scene(pilot, bob)
            room = scene.room
            await scene.say("before the outage")
            await until(pilot, lambda: bob is not None and bob.texts(room) == ["before the outage"])

            server.stop()
            status = app.screen.query_one(ConnectionStatus)
            await until(pilot, lambda: "reconnecting" in str(status.describe()))
            await scene.say("typed while offline")
            await until(pilot, lambda: "typed while offline  ⧗" in screen_text(pilot))
            await until(pilot, lambda: "1 waiting to send" in screen_text(pilot))

            server.start()
            await until(pilot, lambda: status.state == "online", within=120)
            await until(pilot, lambda: "typed while offline  ✓✓" in screen_text(pilot), within=120)
            await until(
                pilot,
                lambda: (
                    bob is not None
                    and bob.texts(room) == ["before the outage", "typed while offline"]
                ),
                within=120,
            )
            assert "waiting to send" not in screen_text(pilot)
    finally:
        if bob is not None:
            await bob.close()
        server.stop()
