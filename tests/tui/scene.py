"""Alice in the TUI and Bob on his own device, friends, their 1:1 room open."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui.harness import Peer, screen_text, type_into, until
from tui.app import SealchatApp
from tui.dialogs.forms import FriendRequest
from tui.widgets.chat_view import ChatView
from tui.widgets.lists import FriendList

SIZE = (100, 30)


class Scene:
    """Alice in the TUI, Bob on his own device; friends, with their 1:1 room open."""

    def __init__(self, pilot: Pilot[Any], bob: Peer) -> None:
        self.pilot, self.bob = pilot, bob

    @property
    def app(self) -> SealchatApp:
        return self.pilot.app  # type: ignore[return-value]

    @property
    def chat(self) -> ChatView:
        return self.app.screen.query_one(ChatView)

    @property
    def room(self) -> str:
        assert self.chat.room is not None
        return self.chat.room.id

    def log_text(self) -> str:
        return "\n".join(e.text or e.problem for e in self.chat.log_widget.entries())

    async def say(self, text: str) -> None:
        await type_into(self.pilot, "#composer", text)
        await self.pilot.press("enter")


async def befriend_in_ui(pilot: Pilot[Any], bob: Peer, alice: str) -> None:
    """Bob asks; Alice answers the request from her friends list."""
    app = pilot.app
    await bob.client.api.request_friend(alice)
    await until(pilot, lambda: f"{bob.id} wants to be" in screen_text(pilot))
    app.screen.query_one(FriendList).focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, FriendRequest))
    await pilot.click("#accept")
    await until(
        pilot, lambda: f"○ {bob.id}" in screen_text(pilot) or f"● {bob.id}" in screen_text(pilot)
    )
