"""Driving the Textual client as a person would, against a real ``sealchatd all``.

``LocalServer`` runs the real server program on a loopback port (stopped by pid). The other
side of a conversation is a ``Peer``: a real ``ChatClient`` with the real crypto engine in its
own profile (the headless core the CLI uses), so every message the TUI shows was encrypted by
one real device and decrypted by another.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widget import Widget

from tests import services
from tests.client.harness import FAST_KDF, PASSWORD, Recorder
from tui.app import SealchatApp
from tui.client.client import ChatClient
from tui.client.e2ee import E2ee
from tui.client.profile import Profile, ProfileConfig, login_device, make_client, new_device_id
from tui.crypto import LocalStore

SEALCHATD = str(Path(sys.executable).with_name("sealchatd"))
PASSPHRASE = "local passphrase"
#: Generous: several engineers run tests on this 2-core machine at once.
WITHIN = 60.0


class LocalServer:
    def __init__(self, data_dir: Path) -> None:
        self.port = services.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [SEALCHATD, "all", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                log_text = (self.data_dir / "server.log").read_text()
                raise RuntimeError(f"sealchatd exited: {log_text}")
            try:
                with urllib.request.urlopen(self.url + "/auth/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sealchatd did not answer within 120 s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def new_user(prefix: str = "u") -> str:
    return prefix + uuid.uuid4().hex[:10]


def make_app(home: Path, server: str | None = None) -> SealchatApp:
    return SealchatApp(
        home,
        server,
        kdf=FAST_KDF,
        downloads=home / "downloads",
        server_data_dir=home / "server-data",
    )


async def until(pilot: Pilot[Any], check: Callable[[], Any], within: float = WITHIN) -> Any:
    """Let the app run until ``check()`` is truthy (it is what a person waits for)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {within:.0f}s: {check}")
        await pilot.pause(0.05)


def text_of(widget: Widget) -> str:
    """What a widget shows, as plain text."""
    rendered = widget.render()
    return str(getattr(rendered, "plain", rendered))


def screen_text(pilot: Pilot[Any]) -> str:
    """Everything on the screen as plain text, one line per row (like ``capture-pane``)."""
    app = pilot.app
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        record=True,
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    update = app.screen._compositor.render_update(full=True)
    console.print(update)
    return console.export_text(styles=False)


async def type_into(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Focus the field and type ``text`` key by key."""
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    await pilot.press(*[_key(c) for c in text])


def _key(char: str) -> str:
    return {
        " ": "space",
        "-": "minus",
        "_": "underscore",
        ".": "full_stop",
        ":": "colon",
        "/": "slash",
        "@": "at",
    }.get(char, char)


async def sign_up(pilot: Pilot[Any], user: str, server: str) -> None:
    """The first-run form, filled and sent as a person would."""
    screen = pilot.app.screen
    server_input = screen.query_one("#server")
    server_input.value = ""  # type: ignore[attr-defined]
    await type_into(pilot, "#server", server)
    await type_into(pilot, "#user", user)
    await type_into(pilot, "#password", PASSWORD)
    await type_into(pilot, "#passphrase", PASSPHRASE)
    await type_into(pilot, "#passphrase2", PASSPHRASE)
    await pilot.click("#signup")


async def signed_in(pilot: Pilot[Any]) -> None:
    from tui.screens.main import MainScreen

    app = pilot.app

    def ready() -> bool:
        errors = [w for w in app.screen.query("#error") if w.display]
        if errors and not isinstance(app.screen, MainScreen):
            raise AssertionError(f"sign-in failed: {text_of(errors[0])}")
        return (
            isinstance(app.screen, MainScreen)
            and app.session is not None
            and app.session.client.state == "online"
        )

    await until(pilot, ready)
    await pilot.pause(0.2)


async def create_profile(home: Path, server: str, user: str) -> None:
    """A profile signed up and logged in by the core (for tests about later screens)."""
    await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
    store = LocalStore.open(Profile(home).store_path, PASSPHRASE, kdf=FAST_KDF)
    client = make_client(server, store, None)
    try:
        await client.api.signup(user, PASSWORD, f"{user}@example.org")
        e2ee = await login_device(client, store, user, PASSWORD, new_device_id())
        Profile(home).save_config(ProfileConfig(server, user, e2ee.engine.device_id))
    finally:
        await client.close()
        store.close()


async def with_profile(home: Path, act: Callable[[ChatClient], Awaitable[Any]]) -> None:
    """Act as the profile's own device through the core (while its TUI is not running)."""
    profile = Profile(home)
    config = profile.config()
    assert config is not None
    store = LocalStore.open(profile.store_path, PASSPHRASE, kdf=FAST_KDF)
    client = make_client(config.server, store, config.device_id)
    try:
        await act(client)
    finally:
        await client.close()
        store.close()


def make_profile(home: Path, server: str, user: str) -> None:
    """``create_profile`` for synchronous tests (the snapshot ones)."""
    asyncio.run(create_profile(home, server, user))


async def unlock(pilot: Pilot[Any]) -> None:
    await type_into(pilot, "#passphrase", PASSPHRASE)
    await pilot.press("enter")
    await signed_in(pilot)


class Peer:
    """The other person: a real client core with its own device and keys."""

    def __init__(self, client: ChatClient, store: LocalStore, e2ee: E2ee, seen: Recorder):
        self.client, self.store, self.e2ee, self.seen = client, store, e2ee, seen

    @property
    def id(self) -> str:
        return self.client.user

    @classmethod
    async def join(cls, server: str, home: Path, user: str | None = None) -> Peer:
        user = user or new_user("p")
        store = LocalStore.open(home / f"{user}.sqlite3", "pp", kdf=FAST_KDF)
        client = make_client(server, store, None)
        seen = Recorder(client)
        await client.api.signup(user, PASSWORD, f"{user}@example.org")
        e2ee = await login_device(client, store, user, PASSWORD, new_device_id())
        client.connect()
        await client.wait_synced()
        return cls(client, store, e2ee, seen)

    def texts(self, room: str) -> list[str]:
        return [m.text for m in self.seen.shown(room)]

    async def close(self) -> None:
        await self.client.close()
        self.store.close()
