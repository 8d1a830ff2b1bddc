"""Small modal dialogs: ask for a text, confirm an action, answer a friend request, pick users.

Each is a ``ModalScreen[T]`` that ``dismiss``es with its answer (``None`` when cancelled), so a
caller reads ``await app.push_screen_wait(Dialog(...))`` or passes a callback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """Escape cancels every dialog."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskText(Dialog[str | None]):
    """One line of text (a user id, a room name, a file path).

    With ``check``, the answer is acted on while the dialog stays open: a returned sentence is
    shown under the field (the person fixes it in place), ``None`` closes the dialog.
    """

    def __init__(
        self,
        title: str,
        label: str,
        *,
        placeholder: str = "",
        ok: str = "OK",
        value: str = "",
        hint: str = "",
        check: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        super().__init__()
        self.title_text, self.label, self.placeholder = title, label, placeholder
        self.ok, self.value, self.hint = ok, value, hint
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Label(self.label)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Static(self.hint, classes="dialog-hint")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.ok, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def show_error(self, text: str) -> None:
        self.query_one("#error", Static).update(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        value = self.query_one("#answer", Input).value.strip()
        if not value:
            self.show_error("Type something first, or press Escape to cancel.")
            return
        if self.check is None:
            self.dismiss(value)
        else:
            self.query_one("#ok", Button).disabled = True
            self.run_check(value)

    @work(exclusive=True, exit_on_error=False)
    async def run_check(self, value: str) -> None:
        assert self.check is not None
        problem = await self.check(value)
        self.query_one("#ok", Button).disabled = False
        if problem is None:
            self.dismiss(value)
        else:
            self.show_error(problem)
            self.query_one("#answer", Input).focus()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class Confirm(Dialog[bool | None]):
    """Yes or no; ``danger`` makes the confirming button red and focuses Cancel."""

    def __init__(self, title: str, text: str, *, ok: str = "OK", danger: bool = False) -> None:
        super().__init__()
        self.title_text, self.text, self.ok, self.danger = title, text, ok, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.text, classes="warning" if self.danger else "")
            with Horizontal(classes="buttons"):
                yield Button(self.ok, variant="error" if self.danger else "primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel" if self.danger else "#ok", Button).focus()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)


class FriendRequest(Dialog[str | None]):
    """Someone asked to be friends: ``accept``, ``decline`` or ``None`` (later)."""

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Friend request", classes="dialog-title")
            yield Static(
                f"{self.user} wants to be your friend. Friends see when you are "
                "online and can open a 1:1 room with you."
            )
            with Horizontal(classes="buttons"):
                yield Button("Accept", variant="success", id="accept")
                yield Button("Decline", variant="error", id="decline")
                yield Button("Later", id="later")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "later" else event.button.id)


class PickUsers(Dialog[list[str] | None]):
    """Choose some of ``users`` (invite, kick) — or a room name and members (create)."""

    def __init__(
        self,
        title: str,
        text: str,
        users: list[str],
        *,
        ok: str = "OK",
        ask_name: bool = False,
        empty: str = "nobody to choose",
    ) -> None:
        super().__init__()
        self.title_text, self.text, self.users, self.ok = title, text, users, ok
        self.ask_name, self.empty = ask_name, empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.ask_name:
                yield Label("Room name")
                yield Input(placeholder="e.g. night owls", id="name")
            yield Static(self.text if self.users else self.empty)
            yield SelectionList[str](*[(u, u) for u in self.users], id="users")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.ok, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#users").display = bool(self.users)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        chosen = list(self.query_one("#users", SelectionList).selected)
        if self.ask_name:
            name = self.query_one("#name", Input).value.strip()
            if not name:
                self.query_one("#error", Static).update("Give the room a name.")
                self.query_one("#name", Input).focus()
                return
            self.dismiss([name, *chosen])
            return
        if not chosen:
            self.query_one("#error", Static).update(
                "Choose someone with Space (or a click), then OK."
                if self.users
                else "Press Escape to close."
            )
            return
        self.dismiss(chosen)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
