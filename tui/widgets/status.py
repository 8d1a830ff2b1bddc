"""The connection line, always visible: connected, reconnecting (with a countdown), offline
(with how many messages wait in the outbox), logged out."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class ConnectionStatus(Static):
    state: reactive[str] = reactive("connecting")
    """``connecting``, ``online``, ``offline``, ``logged_out``, ``closed``."""
    outbox: reactive[int] = reactive(0)
    """Messages typed but not yet accepted by the server."""
    detail: reactive[str] = reactive("")
    """Why the connection is down, for a person."""
    retry_at: reactive[float | None] = reactive(None)
    """Monotonic time of the next reconnect attempt."""
    who: reactive[str] = reactive("")
    """``user @ server`` shown on the left."""

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh)

    def set_state(self, state: str, outbox: int, detail: str, retry_in: float | None) -> None:
        self.state = state
        self.outbox = outbox
        self.detail = detail
        self.retry_at = None if retry_in is None else time.monotonic() + retry_in

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(" sealchat ", style="bold reverse")
        if self.who:
            out.append(f" {self.who} ", style="bold")
        out.append(" ")
        out.append_text(self.describe())
        return out

    def describe(self) -> Text:
        pending = f" · {self.outbox} waiting to send" if self.outbox else ""
        if self.state == "online":
            return Text(f"● connected{pending}", style="green")
        if self.state == "connecting":
            return Text(f"◌ connecting…{pending}", style="yellow")
        if self.state == "offline":
            if self.retry_at is not None:
                left = max(0, round(self.retry_at - time.monotonic()))
                when = f"reconnecting in {left}s" if left else "reconnecting…"
            else:
                when = "offline"
            return Text(f"○ {when}{pending}", style="yellow")
        if self.state == "logged_out":
            return Text(f"✗ logged out: {self.detail or 'log in again'}{pending}", style="red")
        return Text(f"○ offline{pending}", style="red")
