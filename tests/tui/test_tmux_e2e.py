"""Two real ``sealchat`` processes in tmux, typed at as a person would (``send-keys``) and read
from the terminal (``capture-pane``): sign up both, become friends, open a room, exchange
messages both ways, and see them decrypted on both screens."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.harness import LocalServer, new_user

WITHIN = 90.0
#: A pause after each burst of keys, as a person leaves (and the app needs) between fields.
PACE = 0.3


class Tmux:
    """A private tmux server (its own socket) holding one window per person."""

    def __init__(self) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            pytest.fail("tmux is not installed: apt-get install -y tmux")
        self.exe = tmux
        self.socket = f"sealchat-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.exe, "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, name: str, argv: list[str]) -> None:
        self.run("new-session", "-d", "-s", name, "-x", "100", "-y", "30", *argv)

    def keys(self, name: str, *keys: str) -> None:
        self.run("send-keys", "-t", name, *keys)
        time.sleep(PACE)

    def type(self, name: str, text: str) -> None:
        self.run("send-keys", "-t", name, "-l", text)
        time.sleep(PACE)

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name)

    def wait_for(self, name: str, text: str, within: float = WITHIN) -> str:
        deadline = time.monotonic() + within
        while True:
            shown = self.screen(name)
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on {name}'s screen:\n{shown}")
            time.sleep(0.3)

    def stop(self) -> None:
        subprocess.run(
            [self.exe, "-L", self.socket, "kill-server"], capture_output=True, timeout=30
        )


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    mux = Tmux()
    try:
        yield mux
    finally:
        mux.stop()


def sealchat(home: Path, server: str) -> list[str]:
    return [sys.executable, "-m", "tui.tui_main", "--home", str(home), "--server", server]


def sign_up(tmux: Tmux, who: str, user: str) -> None:
    tmux.wait_for(who, "Welcome to sealchat")
    time.sleep(1.0)  # the form gets its focus right after the first paint
    # The form starts on the user id; Enter moves to the next field, and sends on the last.
    for value in (user, "correct horse battery staple", "local pass", "local pass", ""):
        if value:
            tmux.type(who, value)
        tmux.keys(who, "Enter")
    tmux.wait_for(who, "● connected")


def test_two_people_chat_in_two_terminals(server: LocalServer, tmux: Tmux, tmp_path: Path) -> None:
    alice, bob = new_user("a"), new_user("b")
    tmux.start("alice", sealchat(tmp_path / "alice", server.url))
    tmux.start("bob", sealchat(tmp_path / "bob", server.url))
    sign_up(tmux, "alice", alice)
    sign_up(tmux, "bob", bob)

    tmux.keys("alice", "C-f")
    tmux.wait_for("alice", "Add a friend")
    tmux.type("alice", bob)
    tmux.keys("alice", "Enter")
    tmux.wait_for("alice", f"{bob} (asked)")

    tmux.wait_for("bob", f"{alice} wants to be")
    tmux.keys("bob", "Tab")  # from the rooms list to the friends list
    tmux.keys("bob", "Enter")
    tmux.wait_for("bob", "Friend request")
    tmux.keys("bob", "Enter")  # Accept has the focus
    tmux.wait_for("bob", f"○ {alice}")
    tmux.keys("bob", "Enter")  # open the 1:1 room with alice
    tmux.wait_for("bob", f"@{alice}")
    time.sleep(0.5)
    tmux.type("bob", "hello alice")
    tmux.keys("bob", "Enter")
    tmux.wait_for("bob", "hello alice  ✓✓")

    tmux.wait_for("alice", f"@{bob} (1)")
    tmux.keys("alice", "Enter")  # the room is first in the list
    tmux.wait_for("alice", f"{bob}  hello alice")
    tmux.type("alice", "hi bob")
    tmux.keys("alice", "Enter")
    tmux.wait_for("alice", "hi bob  ✓✓")
    tmux.wait_for("bob", f"{alice}  hi bob")

    tmux.keys("alice", "C-q")
    tmux.keys("bob", "C-q")
