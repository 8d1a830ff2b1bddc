"""``SealchatApp``: the Textual terminal client over the ``ChatClient`` core.

The app owns the session (profile, store, client) and routes what the core reports: client
events are queued by a synchronous callback and applied to the main screen in batches (one
Textual message per batch, at most every ``FLUSH_EVERY`` seconds, so a burst of messages costs
a few layouts, not a thousand).
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import platformdirs
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from tui.client.events import ClientEvent
from tui.client.profile import Profile
from tui.crypto import KdfParams, SasUpdate
from tui.dialogs.settings import Prefs
from tui.dialogs.verify import VerifyDialog
from tui.screens.main import MainScreen
from tui.screens.palette import SealchatCommands
from tui.screens.sender import Draft, Sender
from tui.screens.session import Session
from tui.screens.welcome import UnlockScreen, WelcomeScreen

log = logging.getLogger("sealchat.tui")

THEMES = {"dark": "textual-dark", "light": "textual-light"}
#: Client events are applied at most this often: every batch costs a layout of the chat log,
#: and while a burst arrives one layout per frame would leave no time for key presses.
FLUSH_EVERY = 0.2


class SealchatApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "sealchat"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {SealchatCommands}
    BINDINGS: ClassVar[list[Any]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    class Flush(Message):
        """Client events are waiting in ``SealchatApp.pending``."""

    def __init__(
        self,
        home: Path,
        server: str | None = None,
        *,
        kdf: KdfParams | None = None,
        downloads: Path | None = None,
        server_data_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.profile = Profile(home)
        self.server = server
        self.kdf = kdf
        """Argon2id cost of a new local store (None: the store's own default)."""
        self.downloads = downloads or Path(platformdirs.user_downloads_dir()) / "sealchat"
        self.server_data_dir = server_data_dir or Path(platformdirs.user_data_dir("sealchatd"))
        self.session: Session | None = None
        self.sender: Sender | None = None
        self.prefs = Prefs()
        self.main: MainScreen | None = None
        self.pending: list[ClientEvent] = []
        self._flush_posted = False
        self._last_flush = 0.0
        self._unsubscribe: Any = None

    # --- start -------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme = THEMES["dark"]
        config = self.profile.config()
        if config is None or config.user is None:
            self.push_screen(WelcomeScreen(self.server))
        else:
            self.push_screen(UnlockScreen())

    async def signed_in(self, session: Session) -> None:
        """The profile is open and logged in: show the main screen (which connects).

        Called from a worker of the sign-in screen, which the switch removes: so the switch
        is not awaited here."""
        self.session = session
        self.prefs = self.prefs_for(None)
        self.theme = THEMES.get(self.prefs.theme, THEMES["dark"])
        self.sender = Sender(session.client, self._draft_changed)
        self._unsubscribe = session.client.events.on(self._on_event)
        self.main = MainScreen()
        self.switch_screen(self.main)
        self.call_after_refresh(self._settle_heap)

    def _settle_heap(self) -> None:
        """What is alive once the main screen shows (Textual, the session, the crypto engine)
        lives as long as the app: collect once, then keep the cyclic GC from walking it again.
        Its full collections, which come every few hundred messages in a burst (Textual's
        strips make short-lived cycles), then walk only what came since: measured, their pauses
        were the longest frames left once the log stopped being a widget per message."""
        gc.collect()
        gc.freeze()

    # --- what the core reports ---------------------------------------------------------------
    def _on_event(self, event: ClientEvent) -> None:
        self.pending.append(event)
        if self._flush_posted:
            return
        self._flush_posted = True
        wait = self._last_flush + FLUSH_EVERY - time.monotonic()
        if wait > 0:
            self.set_timer(wait, self._post_flush)
        else:
            self._post_flush()

    def _post_flush(self) -> None:
        self.post_message(self.Flush())

    def on_sealchat_app_flush(self, _message: Flush) -> None:
        events, self.pending = self.pending, []
        self._flush_posted = False
        self._last_flush = time.monotonic()
        if self.main is not None and events:
            self.main.apply(events)

    def _draft_changed(self, draft: Draft) -> None:
        if self.main is not None:
            self.main.draft_changed(draft)

    def verification_update(self, sas: SasUpdate) -> None:
        top = self.screen
        if isinstance(top, VerifyDialog) and top.user == sas.user:
            top.on_sas(sas)
        elif sas.state == "requested":
            self.bell()
            self.push_screen(VerifyDialog(sas.user, incoming=sas))

    def identity_acknowledged(self, user: str) -> None:
        if self.sender is not None:
            self.sender.retry(held=True)
        if self.main is not None:
            self.main.chat.check_held()

    # --- sending -----------------------------------------------------------------------------
    def sender_drafts(self, room: str) -> list[Draft]:
        return self.sender.of_room(room) if self.sender else []

    def send_text(self, room: str, text: str) -> None:
        self.send_content(room, {"body": text})

    def send_content(self, room: str, content: dict[str, Any]) -> None:
        if self.sender is not None:
            self.sender.submit(room, content, ttl=self.room_ttl(room) or None)

    @work(group="typing", exclusive=True, exit_on_error=False)
    async def send_typing(self, room: str, active: bool) -> None:
        await self._quietly("typing", room=room, active=active)

    @work(group="read", exit_on_error=False)
    async def send_read(self, room: str, seq: int) -> None:
        await self._quietly("read", room=room, seq=seq)

    async def _quietly(self, type_: str, **fields: Any) -> None:
        """Typing and read markers are best effort: never wait for a socket, never complain."""
        session = self.session
        if session is None or session.client.state != "online":
            return
        try:
            await session.client.request(type_, wait=5, **fields)
        except Exception as exc:
            log.info(
                "best-effort request failed", extra={"type": type_, "error": type(exc).__name__}
            )

    def is_focused_app(self) -> bool:
        return bool(self.app_focus)

    # --- settings ----------------------------------------------------------------------------
    def prefs_for(self, room: str | None) -> Prefs:
        session = self.session
        if session is None:
            return Prefs()
        store = session.store
        return Prefs(
            theme=store.setting("tui.theme") or "dark",
            bell=(store.setting("tui.bell") or "1") == "1",
            ttl=self.room_ttl(room) if room else 0,
        )

    def room_ttl(self, room: str) -> int:
        session = self.session
        if session is None:
            return 0
        raw = session.store.setting(f"tui.ttl.{room}")
        return int(raw) if raw and raw.isdigit() else 0

    def save_prefs(self, prefs: Prefs, room: str | None) -> None:
        session = self.session
        if session is None:
            return
        session.store.set_setting("tui.theme", prefs.theme)
        session.store.set_setting("tui.bell", "1" if prefs.bell else "0")
        if room is not None:
            session.store.set_setting(f"tui.ttl.{room}", str(prefs.ttl))
        self.prefs = Prefs(prefs.theme, prefs.bell, 0)
        self.theme = THEMES.get(prefs.theme, THEMES["dark"])

    def action_toggle_theme(self) -> None:
        prefs = self.prefs_for(None)
        prefs.theme = "light" if prefs.theme == "dark" else "dark"
        if self.session is not None:
            self.save_prefs(prefs, None)
        else:
            self.theme = THEMES[prefs.theme]

    # --- end ---------------------------------------------------------------------------------
    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.sender is not None:
            await self.sender.close()
        if self.session is not None:
            await self.session.close()
