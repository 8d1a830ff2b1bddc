"""What every command shares: the profile, secrets read safely, output in text or JSON, and
errors turned into one line that says what to do next (exit 1)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

from tui.client.client import ChatClient
from tui.client.errors import NotLoggedIn
from tui.client.profile import Profile, ProfileConfig, make_client
from tui.crypto import LocalStore

PASSPHRASE_ENV = "SEALCHAT_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)


class CommandError(Exception):
    """A failure to report as one line (exit 1)."""


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(args.json)
        self.profile = Profile(Path(args.home).expanduser())
        self._server_flag: str | None = args.server
        self._stdin_lines: list[str] | None = None

    # --- output ------------------------------------------------------------------------------
    def out(self, data: Any, text: str | None = None) -> None:
        """One result: JSON when ``--json``, else ``text`` (or a readable dump of ``data``)."""
        if self.json:
            print(json.dumps(data, ensure_ascii=False, default=str), flush=True)
        else:
            print(text if text is not None else _plain(data), flush=True)

    def note(self, text: str) -> None:
        """Progress for a person, on stderr so it never mixes with results."""
        if not self.json:
            print(text, file=sys.stderr, flush=True)

    # --- settings ----------------------------------------------------------------------------
    @property
    def server(self) -> str:
        if self._server_flag:
            return self._server_flag.rstrip("/")
        config = self.profile.config()
        if config is not None:
            return config.server
        from tui.client.profile import DEFAULT_SERVER

        return DEFAULT_SERVER

    def config(self) -> ProfileConfig:
        config = self.profile.config()
        if config is None or config.user is None:
            raise NotLoggedIn(f"no account in {self.profile.home}: run `sealchat login USER`")
        return config

    # --- secrets: never from argv --------------------------------------------------------------
    def _stdin_line(self) -> str:
        if self._stdin_lines is None:
            self._stdin_lines = [sys.stdin.readline().rstrip("\r\n")]
        return self._stdin_lines[0]

    def password(self, *, confirm: bool = False) -> str:
        if getattr(self.args, "password_stdin", False):
            value = self._stdin_line()
        else:
            value = self._prompt("Password: ", confirm)
        if not value:
            raise CommandError("the password is empty: type it at the prompt or pipe it in")
        return value

    def passphrase(self, *, new: bool = False) -> str:
        value = os.environ.get(PASSPHRASE_ENV)
        if value is None:
            value = self._prompt(
                "New local passphrase (protects this profile): " if new else "Local passphrase: ",
                new,
            )
        if not value:
            raise CommandError(f"the local passphrase is empty: type one or set {PASSPHRASE_ENV}")
        return value

    def _prompt(self, label: str, confirm: bool) -> str:
        if not sys.stdin.isatty():
            raise CommandError(
                "no terminal to ask for a secret: use --password-stdin for the password and "
                f"{PASSPHRASE_ENV} for the local passphrase"
            )
        value = getpass.getpass(label)
        if confirm and getpass.getpass("Again: ") != value:
            raise CommandError("the two entries differ: try again")
        return value

    # --- the client ----------------------------------------------------------------------------
    async def open_store(self, *, new: bool = False) -> LocalStore:
        fresh = new or not LocalStore.exists(self.profile.store_path)
        passphrase = self.passphrase(new=fresh)
        self.note("unlocking the local store…")
        return await self.profile.open_store(passphrase)

    @contextlib.asynccontextmanager
    async def client(self, *, live: bool = False) -> AsyncIterator[ChatClient]:
        """A logged-in client of this profile; ``live`` also connects and catches up."""
        config = self.config()
        store = await self.open_store()
        client = make_client(self.server, store, config.device_id)
        try:
            if not client.logged_in:
                raise NotLoggedIn(
                    f"{config.user} is logged out: run `sealchat login {config.user}`"
                )
            if live:
                client.connect()
                await client.wait_synced()
                await client.settle()
            yield client
        finally:
            await client.close()
            store.close()

    def confirm(self, question: str) -> None:
        """Ask yes/no unless ``--yes``; no terminal and no ``--yes`` is a refusal."""
        if getattr(self.args, "yes", False):
            return
        if not sys.stdin.isatty():
            raise CommandError(f"{question} — refused: add --yes to confirm without a terminal")
        answer = input(f"{question} [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise CommandError("cancelled: nothing was changed")


def _plain(data: Any) -> str:
    if isinstance(data, dict) and "message" in data and len(data) == 1:
        return str(data["message"])
    if isinstance(data, list):
        return "\n".join(_plain(item) for item in data) if data else "(none)"
    if isinstance(data, dict):
        return "  ".join(f"{k}={v}" for k, v in data.items() if v not in (None, ""))
    return str(data)


def fail(message: str) -> NoReturn:
    raise CommandError(message)
