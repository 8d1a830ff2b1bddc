"""Verify a user: the safety number and the emoji comparison (SAS) side by side, and the
acknowledgement of a changed key (which lets held messages go out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from tui.crypto import SasUpdate
from tui.dialogs.forms import Dialog

if TYPE_CHECKING:
    from tui.app import SealchatApp


def grouped(number: str) -> str:
    """12 groups of 5 digits as 3 lines of 4, easy to read aloud."""
    groups = number.split()
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


class VerifyDialog(Dialog[bool | None]):
    """Dismissed with True when the user acknowledged a key change or verified by emoji."""

    def __init__(self, user: str, *, incoming: SasUpdate | None = None) -> None:
        super().__init__()
        self.user = user
        self.txn: str | None = incoming.txn if incoming else None
        self.incoming = incoming
        self.changed = False

    @property
    def sapp(self) -> SealchatApp:
        return cast("SealchatApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Verify {self.user}", classes="dialog-title")
            with Horizontal(id="verify-sides"):
                with Vertical(classes="side"):
                    yield Label("Safety number", classes="side-title")
                    yield Static("loading…", id="safety")
                with Vertical(classes="side"):
                    yield Label("Emoji", classes="side-title")
                    yield Static("Start a live check with their device.", id="sas")
            yield Static("", id="devices")
            yield Static("", id="held", classes="warning")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Acknowledge change", variant="warning", id="ack")
                yield Button("Start emoji check", id="sas-start")
                yield Button("Accept check", variant="primary", id="sas-accept")
                yield Button("They match", variant="success", id="sas-match")
                yield Button("No match", variant="error", id="sas-nomatch")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        for bid in ("ack", "sas-accept", "sas-match", "sas-nomatch"):
            self.query_one(f"#{bid}").display = False
        if self.incoming is not None:
            self.query_one("#sas", Static).update(
                f"{self.user} ({self.incoming.device}) asks to compare emoji with you."
            )
            self.query_one("#sas-accept").display = True
            self.query_one("#sas-start").display = False
        self.load()

    @work(exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        session = self.sapp.session
        assert session is not None and session.e2ee is not None
        e2ee = session.e2ee
        try:
            await e2ee.refresh_devices(sorted({self.user, session.user}))
        except Exception as exc:  # offline: show what this device already knows
            self.query_one("#error", Static).update(f"Could not refresh their keys: {exc}")
        self.show_state()

    def show_state(self) -> None:
        session = self.sapp.session
        assert session is not None and session.e2ee is not None
        engine = session.e2ee.engine
        devices = [d for d in engine.devices_of(self.user) if not d.removed]
        if not devices:
            self.query_one("#safety", Static).update(
                f"{self.user} has no device yet: they must log in once first."
            )
            self.query_one("#sas-start").display = False
            return
        self.query_one("#safety", Static).update(
            Text(grouped(engine.safety_number(self.user)), style="bold")
        )
        lines = Text("Their devices: ", style="dim")
        for d in devices:
            lines.append(f"{d.device} {'✓ verified' if d.verified else '(not verified)'}  ")
        self.query_one("#devices", Static).update(lines)
        held = self.user in engine.held_users()
        self.query_one("#ack").display = held
        self.query_one("#held", Static).update(
            f"{self.user}'s security key changed. Compare the safety number (in person or on "
            "a call); if it matches, acknowledge the change."
            if held
            else ""
        )

    @on(Button.Pressed, "#ack")
    def _ack(self) -> None:
        session = self.sapp.session
        assert session is not None and session.e2ee is not None
        session.e2ee.engine.acknowledge_identity_change(self.user)
        self.changed = True
        self.sapp.identity_acknowledged(self.user)
        self.show_state()
        self.query_one("#held", Static).update("Change acknowledged: held messages go out now.")

    @on(Button.Pressed, "#sas-start")
    def _sas_start(self) -> None:
        self.sas_step("start")

    @on(Button.Pressed, "#sas-accept")
    def _sas_accept(self) -> None:
        self.sas_step("accept")

    @on(Button.Pressed, "#sas-match")
    def _sas_match(self) -> None:
        self.sas_step("confirm")

    @on(Button.Pressed, "#sas-nomatch")
    def _sas_nomatch(self) -> None:
        self.sas_step("cancel")

    @work(exclusive=True, group="sas", exit_on_error=False)
    async def sas_step(self, step: str) -> None:
        session = self.sapp.session
        assert session is not None and session.e2ee is not None
        engine = session.e2ee.engine
        sas = self.query_one("#sas", Static)
        try:
            if step == "start":
                await session.e2ee.refresh_devices([self.user])
                devices = [d for d in engine.devices_of(self.user) if not d.removed]
                if not devices:
                    raise ValueError(f"{self.user} has no device to check yet")
                # Over Olm: the core makes the session with their device first if needed.
                self.txn = await session.e2ee.sas_start(self.user, devices[0].device)
                sas.update("Waiting for them to accept…")
                self.query_one("#sas-start").display = False
            elif step == "accept" and self.txn:
                engine.sas_accept(self.txn)
                sas.update("Exchanging keys…")
                self.query_one("#sas-accept").display = False
            elif step == "confirm" and self.txn:
                engine.sas_confirm(self.txn)
                sas.update("Waiting for them to confirm too…")
            elif step == "cancel" and self.txn:
                engine.sas_cancel(self.txn, "mismatch")
                sas.update(
                    Text("Cancelled: the emoji differ. Do not trust this device.", style="bold red")
                )
            for bid in ("sas-match", "sas-nomatch"):
                self.query_one(f"#{bid}").display = False
            await session.e2ee.flush_to_device()
        except Exception as exc:
            self.query_one("#error", Static).update(f"The emoji check failed: {exc}")

    def on_sas(self, update: SasUpdate) -> None:
        """A step of the emoji check arrived (forwarded by the app)."""
        if self.txn is not None and update.txn != self.txn:
            return
        self.txn = update.txn
        session = self.sapp.session
        assert session is not None and session.e2ee is not None
        sas = self.query_one("#sas", Static)
        if update.state == "keys_exchanged":
            emoji = session.e2ee.engine.sas_emoji(update.txn) or list(update.emoji or [])
            out = Text()
            for symbol, name in emoji:
                out.append(f"{symbol} {name}\n")
            out.append("Do they see the same, in the same order?", style="bold")
            sas.update(out)
            for bid in ("sas-match", "sas-nomatch"):
                self.query_one(f"#{bid}").display = True
        elif update.state == "verified":
            self.changed = True
            sas.update(Text(f"✓ {self.user} ({update.device}) is verified.", style="bold green"))
            self.show_state()
        elif update.state == "cancelled":
            sas.update(
                Text(f"The check was cancelled ({update.reason or 'no reason'}).", style="yellow")
            )
            self.query_one("#sas-start").display = True

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(self.changed)
