"""The multi-line composer: Enter sends, Shift+Enter or Ctrl+J starts a new line.

Typing is reported (``Typing``) at most every ``TYPING_EVERY`` seconds while text changes, and
a stop after ``TYPING_IDLE`` seconds without a key or when the text is sent or cleared; the
server throttles as well, this only keeps the socket quiet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.timer import Timer
from textual.widgets import TextArea

TYPING_EVERY = 2.5
TYPING_IDLE = 4.0


class Composer(TextArea):
    @dataclass
    class Submitted(Message):
        text: str

    @dataclass
    class Typing(Message):
        active: bool

    def __init__(self, **kw: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, **kw)  # type: ignore[arg-type]
        self._typing_sent = 0.0
        self._idle: Timer | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text.strip("\n")
            if text.strip():
                self.clear()
                self._stop_typing()
                self.post_message(self.Submitted(text))
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area is not self:
            return
        if not self.text.strip():
            self._stop_typing()
            return
        now = time.monotonic()
        if now - self._typing_sent >= TYPING_EVERY:
            self._typing_sent = now
            self.post_message(self.Typing(True))
        if self._idle is not None:
            self._idle.stop()
        self._idle = self.set_timer(TYPING_IDLE, self._stop_typing)

    def _stop_typing(self) -> None:
        if self._idle is not None:
            self._idle.stop()
            self._idle = None
        if self._typing_sent:
            self._typing_sent = 0.0
            self.post_message(self.Typing(False))
