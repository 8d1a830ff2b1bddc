"""First run (choose the server, sign up or log in, set the local passphrase) and later runs
(unlock with the passphrase; log in again when the saved login ended).

Errors appear under the form, say what to do next, and focus the field concerned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from tui.client.profile import DEFAULT_SERVER
from tui.crypto import LocalStore
from tui.screens.local_server import is_local, reachable, start_local_server
from tui.screens.session import SessionError, first_run, log_in_again, unlock

if TYPE_CHECKING:
    from tui.app import SealchatApp

INTRO = (
    "End-to-end encrypted chat in your terminal. Your keys never leave this machine; the "
    "server only ever sees ciphertext."
)


def _row(label: str, field: Input, row_id: str | None = None) -> ComposeResult:
    """One labelled field on one line (the whole form fits in 80x24)."""
    with Horizontal(classes="field", id=row_id):
        yield Label(label, classes="field-label")
        yield field


class _Form(Screen[None]):
    @property
    def sapp(self) -> SealchatApp:
        return cast("SealchatApp", self.app)

    def show_error(self, error: SessionError) -> None:
        self.query_one("#error", Static).update(error.message)
        self.query_one("#error").display = True
        if error.field:
            for widget in self.query(f"#{error.field}"):
                widget.focus()
        self.busy(False)

    def busy(self, on: bool, note: str = "") -> None:
        for button in self.query(Button):
            button.disabled = on
        self.query_one("#progress", Static).update(note if on else "")
        if on:
            self.query_one("#error").display = False


class WelcomeScreen(_Form):
    """Sign up or log in on this machine for the first time."""

    def __init__(self, server: str | None = None) -> None:
        super().__init__()
        self.server = server or DEFAULT_SERVER

    def compose(self) -> ComposeResult:
        with VerticalScroll(), Center(), Vertical(id="form", classes="form"):
            yield Label("Welcome to sealchat", classes="form-title")
            yield Static(INTRO, classes="form-intro")
            yield from _row("Server", Input(self.server, id="server"))
            yield from _row("User id", Input(placeholder="e.g. alice", id="user"))
            yield from _row("Password", Input(password=True, id="password"))
            yield from _row(
                "Local passphrase",
                Input(password=True, id="passphrase", placeholder="protects keys on this machine"),
            )
            yield from _row(
                "Passphrase again", Input(password=True, id="passphrase2"), row_id="passphrase2-row"
            )
            yield from _row(
                "Email (optional)",
                Input(placeholder="sign up only; never shown to others", id="email"),
            )
            yield Static("", id="error", classes="error")
            yield Static("", id="progress", classes="progress")
            with Horizontal(classes="buttons"):
                yield Button("Sign up", variant="primary", id="signup")
                yield Button("Log in", id="login")
                yield Button("Start a local server", variant="warning", id="start-server")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#start-server").display = False
        if LocalStore.exists(self.sapp.profile.store_path):
            # A store from an earlier attempt: its passphrase is already set.
            self.query_one("#passphrase2-row").display = False
        self.query_one("#user", Input).focus()

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        order = ["server", "user", "password", "passphrase", "passphrase2", "email"]
        shown = [i for i in order if self.query_one(f"#{i}").parent.display]  # type: ignore[union-attr]
        if event.input.id in shown[:-1]:
            self.query_one(f"#{shown[shown.index(event.input.id) + 1]}", Input).focus()
        else:
            self.submit(signup=True)

    @on(Button.Pressed, "#signup")
    def _signup(self) -> None:
        self.submit(signup=True)

    @on(Button.Pressed, "#login")
    def _login(self) -> None:
        self.submit(signup=False)

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def submit(self, *, signup: bool) -> None:
        pp2 = self.query_one("#passphrase2-row")
        if pp2.display and self.value("passphrase") != self.value("passphrase2"):
            self.show_error(
                SessionError("The two passphrases differ: type the same one twice.", "passphrase2")
            )
            return
        self.busy(True, "Signing up…" if signup else "Logging in…")
        self.run_first(signup)

    @work(exclusive=True, exit_on_error=False)
    async def run_first(self, signup: bool) -> None:
        server = self.value("server").strip().rstrip("/")
        try:
            session = await first_run(
                self.sapp.profile,
                server=server,
                user=self.value("user").strip(),
                password=self.value("password"),
                passphrase=self.value("passphrase"),
                signup=signup,
                email=self.value("email").strip(),
                kdf=self.sapp.kdf,
            )
        except SessionError as exc:
            self.show_error(exc)
            if exc.field == "server" and is_local(server):
                self.query_one("#start-server").display = True
            return
        await self.sapp.signed_in(session)

    @on(Button.Pressed, "#start-server")
    def _start_server(self) -> None:
        self.busy(True, "Starting the local server (sealchatd all)…")
        self.start_server()

    @work(exclusive=True, exit_on_error=False)
    async def start_server(self) -> None:
        server = self.value("server").strip().rstrip("/")
        try:
            if not await reachable(server):
                pid = await start_local_server(server, self.sapp.server_data_dir)
                self.notify(f"Local server started (pid {pid}); it keeps running after you quit.")
        except (OSError, RuntimeError, TimeoutError) as exc:
            self.show_error(SessionError(f"Could not start the local server: {exc}", "server"))
            return
        self.query_one("#start-server").display = False
        self.busy(False)
        self.query_one("#user", Input).focus()


class UnlockScreen(_Form):
    """Later runs: the passphrase opens the profile (and a password if the login ended)."""

    def compose(self) -> ComposeResult:
        config = self.sapp.profile.config()
        who = f"{config.user} on {config.server}" if config else ""
        with VerticalScroll(), Center(), Vertical(id="form", classes="form narrow"):
            yield Label("Unlock sealchat", classes="form-title")
            yield Static(who, classes="form-intro")
            yield from _row(
                "Local passphrase", Input(password=True, id="passphrase"), row_id="passphrase-row"
            )
            yield from _row("Password", Input(password=True, id="password"), row_id="password-row")
            yield Static("", id="error", classes="error")
            yield Static("", id="progress", classes="progress")
            with Horizontal(classes="buttons"):
                yield Button("Unlock", variant="primary", id="unlock")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#password-row").display = False
        self.query_one("#passphrase", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#unlock")
    def _unlock(self) -> None:
        self.busy(True, "Unlocking…")
        self.run_unlock()

    @work(exclusive=True, exit_on_error=False)
    async def run_unlock(self) -> None:
        app = self.sapp
        try:
            session = app.session
            if session is None:
                session = await unlock(
                    app.profile, self.query_one("#passphrase", Input).value, app.kdf
                )
                app.session = session
            if not session.client.logged_in:
                password = self.query_one("#password", Input)
                row = self.query_one("#password-row")
                if not row.display:
                    row.display = True
                    self.query_one("#passphrase-row").display = False
                    password.focus()
                    raise SessionError(
                        "Your login ended (logged out, or away too long): "
                        "type your password to log in again.",
                        "password",
                    )
                await log_in_again(session, password.value)
        except SessionError as exc:
            self.show_error(exc)
            return
        await app.signed_in(session)
