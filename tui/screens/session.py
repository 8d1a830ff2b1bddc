"""The signed-in session behind the screens: profile, local store, ``ChatClient``, E2EE.

Kept free of Textual so the steps of first run and unlock read in order and fail with errors
that say what to do next (``SessionError``), which the screens show in place.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from backend.protocol.errors import ErrorCode
from tui.client.client import ChatClient
from tui.client.e2ee import E2ee
from tui.client.errors import ApiError, ClientError, ServerUnreachable
from tui.client.profile import (
    Profile,
    ProfileConfig,
    ProfileMismatch,
    login_device,
    make_client,
    new_device_id,
)
from tui.crypto import CryptoError, KdfParams, LocalStore, StoreCorrupt, WrongPassphrase


class SessionError(Exception):
    """A failure to show next to the field it concerns (``field``: an input id, or None)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class Session:
    profile: Profile
    store: LocalStore
    client: ChatClient

    @property
    def user(self) -> str:
        return self.client.user

    @property
    def server(self) -> str:
        return self.client.server

    @property
    def e2ee(self) -> E2ee | None:
        cipher = self.client.cipher
        return cipher if isinstance(cipher, E2ee) else None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
        self.store.close()


def explain(exc: BaseException, server: str = "") -> SessionError:
    """Turn what the client core raised into a sentence for a person (with the field)."""
    if isinstance(exc, SessionError):
        return exc
    if isinstance(exc, ServerUnreachable):
        where = server or "the server"
        return SessionError(
            f"Cannot reach {where}. Is the server running? Start it with `sealchatd all` "
            "(or press “Start a local server”), or fix the address.",
            "server",
        )
    if isinstance(exc, WrongPassphrase):
        return SessionError(
            "That passphrase does not unlock this profile. Try again (it is the one you set "
            "on first run), or start sealchat with another --home.",
            "passphrase",
        )
    if isinstance(exc, StoreCorrupt):
        return SessionError(f"{exc} Move the profile directory aside and log in again.")
    if isinstance(exc, ProfileMismatch):
        return SessionError(exc.message, "user")
    if isinstance(exc, ApiError):
        if exc.code == ErrorCode.CONFLICT:
            return SessionError(_sentence(exc.message), "user")
        if exc.code == ErrorCode.BAD_CREDENTIALS:
            return SessionError(
                "Wrong user id or password. Check both and try again "
                "(no account yet? choose “Sign up”).",
                "password",
            )
        if exc.code == ErrorCode.THROTTLED:  # the message says how long is left
            return SessionError(_sentence(exc.message) + ".")
        if exc.code == ErrorCode.INVALID:
            return SessionError(_sentence(exc.message))
        return SessionError(f"The server refused: {exc.message}")
    if isinstance(exc, ClientError | CryptoError):
        return SessionError(str(exc))
    if isinstance(exc, OSError):
        return SessionError(f"{exc}. Check that the profile directory is writable.")
    return SessionError(f"Unexpected problem ({type(exc).__name__}): {exc}")


def _sentence(text: str) -> str:
    """The server's lower-case message as the start of a sentence."""
    return text[:1].upper() + text[1:]


async def _open_store(profile: Profile, passphrase: str, kdf: KdfParams | None) -> LocalStore:
    if not passphrase:
        raise SessionError(
            "Type a local passphrase: it protects your keys and messages on this machine.",
            "passphrase",
        )
    try:
        return await profile.open_store(passphrase, kdf)
    except Exception as exc:
        raise explain(exc) from exc


async def first_run(
    profile: Profile,
    *,
    server: str,
    user: str,
    password: str,
    passphrase: str,
    signup: bool,
    email: str = "",
    kdf: KdfParams | None = None,
) -> Session:
    """Sign up (or log in), register this device and save the profile."""
    server = server.strip().rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise SessionError("The server address starts with http:// or https://.", "server")
    if not user:
        raise SessionError("Choose a user id (letters, digits, - and _).", "user")
    if not password:
        raise SessionError("Type your password.", "password")
    store = await _open_store(profile, passphrase, kdf)
    config = profile.config()
    client = make_client(server, store, config.device_id if config else None)
    try:
        if signup:
            # The server requires an address; example.org is reserved for exactly this.
            await client.api.signup(user, password, email or f"{user}@example.org")
        device_id = (config.device_id if config else None) or new_device_id()
        e2ee = await login_device(client, store, user, password, device_id)
        profile.save_config(ProfileConfig(server, user, e2ee.engine.device_id))
    except BaseException as exc:
        await client.close()
        store.close()
        if isinstance(exc, Exception):
            raise explain(exc, server) from exc
        raise
    return Session(profile, store, client)


async def unlock(profile: Profile, passphrase: str, kdf: KdfParams | None = None) -> Session:
    """Open a saved profile; the session may be logged out (``client.logged_in``)."""
    config = profile.config()
    if config is None or config.user is None:
        raise SessionError("This profile has no account yet: sign up or log in first.")
    store = await _open_store(profile, passphrase, kdf)
    client = make_client(config.server, store, config.device_id)
    return Session(profile, store, client)


async def log_in_again(session: Session, password: str) -> None:
    """The saved login ended (logged out elsewhere, expired): log this device in again."""
    config = session.profile.config()
    assert config is not None and config.user is not None
    if not password:
        raise SessionError("Type your password to log in again.", "password")
    try:
        await login_device(
            session.client,
            session.store,
            config.user,
            password,
            config.device_id or new_device_id(),
        )
    except Exception as exc:
        raise explain(exc, config.server) from exc


def profile_at(home: Path) -> Profile:
    return Profile(home)
