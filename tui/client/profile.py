"""A profile: one directory per account and device (``--home``), so several users can run
on one machine.

Layout::

    HOME/profile.json     server URL, user id, device id (nothing secret; mode 0600 anyway)
    HOME/store.sqlite3    the local store (tui.crypto.LocalStore): device keys, sessions, trust,
                          replay records, tokens, outbox, sync state, decrypted history, all
                          sealed under a key derived from the passphrase (Argon2id)

A profile belongs to one user on one server; logging in as someone else needs another home.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from tui.client.client import ChatClient
from tui.client.e2ee import E2ee
from tui.client.errors import ClientError
from tui.client.tokens import SealedTokens
from tui.crypto import Engine, KdfParams, LocalStore

DEFAULT_SERVER = "http://127.0.0.1:8080"
STORE = "store.sqlite3"
CONFIG = "profile.json"


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("sealchat", appauthor=False))


def new_device_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "SC" + "".join(secrets.choice(alphabet) for _ in range(10))


@dataclass
class ProfileConfig:
    server: str
    user: str | None = None
    device_id: str | None = None


class ProfileMismatch(ClientError):
    pass


class Profile:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.store_path = home / STORE
        self.config_path = home / CONFIG

    def config(self) -> ProfileConfig | None:
        try:
            return ProfileConfig(**json.loads(self.config_path.read_text()))
        except FileNotFoundError:
            return None

    def save_config(self, config: ProfileConfig) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.config_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(config), f)
        os.replace(tmp, self.config_path)

    async def open_store(self, passphrase: str, kdf: KdfParams | None = None) -> LocalStore:
        """Open (or create) the local store; Argon2id runs off the event loop."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return await asyncio.to_thread(LocalStore.open, self.store_path, passphrase, kdf=kdf)


def make_client(server: str, store: LocalStore, device_id: str | None) -> ChatClient:
    """A ``ChatClient`` over ``store``, with E2EE attached when the store holds device keys."""
    client = ChatClient(server, store, SealedTokens(store), device_id=device_id)
    if Engine.has_account(store):
        client.attach(Engine.load(store))
    return client


async def login_device(
    client: ChatClient, store: LocalStore, user: str, password: str, device_id: str
) -> E2ee:
    """Log in and make sure this profile has a registered device with published keys."""
    if Engine.has_account(store):
        engine = Engine.load(store)
        if engine.user_id != user:
            raise ProfileMismatch(
                f"this profile belongs to {engine.user_id}: use another --home for {user}"
            )
    await client.login(user, password)
    fresh = not Engine.has_account(store)
    engine = Engine.create(store, user, device_id) if fresh else Engine.load(store)
    e2ee = client.attach(engine)
    registered = {d["device_id"] for d in await client.api.devices()}
    if engine.device_id not in registered:
        await e2ee.register_device()
    else:
        await e2ee.top_up_keys()
    return e2ee
