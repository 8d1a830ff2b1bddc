"""Settings (theme, terminal bell, the open room's disappearing-message timer) and the list of
this account's devices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Select, Static, Switch

from tui.dialogs.forms import Dialog

TIMERS: list[tuple[str, int]] = [
    ("off", 0),
    ("30 seconds", 30),
    ("5 minutes", 300),
    ("1 hour", 3600),
    ("1 day", 86400),
    ("1 week", 604800),
]


@dataclass
class Prefs:
    theme: str = "dark"
    """``dark`` or ``light``."""
    bell: bool = True
    """Ring the terminal bell for new messages in rooms not in view."""
    ttl: int = 0
    """Seconds until messages sent in the open room disappear (0: never)."""


class SettingsDialog(Dialog[Prefs | None]):
    def __init__(self, prefs: Prefs, room_title: str | None) -> None:
        super().__init__()
        self.prefs = prefs
        self.room_title = room_title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Settings", classes="dialog-title")
            with Horizontal(classes="row"):
                yield Label("Theme", classes="row-label")
                yield Select[str](
                    [("dark", "dark"), ("light", "light")],
                    value=self.prefs.theme,
                    allow_blank=False,
                    id="theme",
                )
            with Horizontal(classes="row"):
                yield Label("Bell for new messages", classes="row-label")
                yield Switch(value=self.prefs.bell, id="bell")
            with Horizontal(classes="row"):
                yield Label("Messages disappear after", classes="row-label")
                yield Select[int](
                    TIMERS,
                    value=self.prefs.ttl if self.prefs.ttl else 0,
                    allow_blank=False,
                    id="ttl",
                    disabled=self.room_title is None,
                )
            yield Static(
                f"The timer applies to messages you send in {self.room_title}."
                if self.room_title
                else "Open a room to set its disappearing-message timer.",
                classes="dialog-hint",
            )
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        theme = self.query_one("#theme", Select).value
        ttl = self.query_one("#ttl", Select).value
        self.dismiss(
            Prefs(
                theme=str(theme),
                bell=self.query_one("#bell", Switch).value,
                ttl=int(ttl) if isinstance(ttl, int) else 0,
            )
        )

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class DevicesDialog(Dialog[None]):
    """Every device of this account (from ``GET /auth/devices``), this one marked."""

    def __init__(self, devices: list[dict[str, Any]], this: str | None) -> None:
        super().__init__()
        self.devices = devices
        self.this = this

    def compose(self) -> ComposeResult:
        out = Text()
        for d in self.devices:
            mine = d.get("device_id") == self.this
            out.append("● " if mine else "  ", style="green")
            out.append(str(d.get("device_id")), style="bold")
            out.append(f"  {d.get('display_name', '')}")
            if mine:
                out.append("  (this device)", style="green")
            key = str((d.get("keys") or {}).get("ed25519", ""))
            out.append(
                f"\n    key {key[:24]}…  since {str(d.get('created_at', ''))[:10]}\n", style="dim"
            )
        with Vertical(classes="dialog"):
            yield Label("Your devices", classes="dialog-title")
            yield Static(out if self.devices else "No device registered.")
            with Horizontal(classes="buttons"):
                yield Button("Close", variant="primary", id="close")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
