"""The command palette (Ctrl+P) offers every action of the main screen by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

#: (title, help, action name on the main screen or ``app.`` for the app)
COMMANDS: list[tuple[str, str, str]] = [
    ("New room", "Create a group room and invite friends", "new_room"),
    ("Add friend", "Ask someone to be your friend", "add_friend"),
    ("Invite to room", "Invite friends to the open room", "invite"),
    ("Remove member", "Remove someone from the open room (admins)", "kick"),
    ("Verify user", "Safety number and emoji check", "verify"),
    ("Devices", "The devices of your account", "devices"),
    ("Send file", "Encrypt and send a file to the open room", "send_file"),
    ("Leave room", "Leave the open room", "leave"),
    ("Delete room", "Delete the open room for everyone (owner)", "delete_room"),
    ("Settings", "Theme, bell, disappearing messages", "settings"),
    ("Toggle theme", "Switch between the light and the dark theme", "app.toggle_theme"),
    ("Quit", "Leave sealchat (messages being sent are kept)", "app.quit"),
]


class SealchatCommands(Provider):
    """Only on the main screen: before sign-in there is nothing to act on."""

    def _run(self, action: str) -> None:
        if action.startswith("app."):
            self.app.call_next(self.app.run_action, action.removeprefix("app."))
        else:
            self.app.call_next(self.screen.run_action, action)

    def _available(self) -> list[tuple[str, str, str]]:
        from tui.screens.main import MainScreen

        if isinstance(self.screen, MainScreen):
            return COMMANDS
        return [c for c in COMMANDS if c[2].startswith("app.")]

    async def discover(self) -> Hits:
        for title, help_text, action in self._available():
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._available():
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(self._run, action),
                    text=title,
                    help=help_text,
                )
