"""First run and later runs: sign up, log in, unlock; every error shown in place."""

from __future__ import annotations

from pathlib import Path

from backend.protocol.errors import ErrorCode
from tests import services
from tests.tui.harness import (
    PASSPHRASE,
    LocalServer,
    Peer,
    create_profile,
    make_app,
    new_user,
    screen_text,
    sign_up,
    signed_in,
    text_of,
    type_into,
    unlock,
    until,
    with_profile,
)
from tui.client.errors import ApiError
from tui.screens.main import MainScreen
from tui.screens.session import explain
from tui.screens.welcome import UnlockScreen, WelcomeScreen

SIZE = (80, 24)


def error_of(pilot) -> str:  # type: ignore[no-untyped-def]
    widget = pilot.app.screen.query_one("#error")
    return text_of(widget) if widget.display else ""


async def test_sign_up_then_unlock_on_the_next_run(server: LocalServer, tmp_path: Path) -> None:
    user = new_user("a")
    app = make_app(tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        await sign_up(pilot, user, server.url)
        await signed_in(pilot)
        text = screen_text(pilot)
        assert f"{user} @ 127.0.0.1" in text
        assert "● connected" in text
        await pilot.press("ctrl+q")
    again = make_app(tmp_path / "home")
    async with again.run_test(size=SIZE) as pilot:
        assert isinstance(again.screen, UnlockScreen)
        assert user in screen_text(pilot)
        await type_into(pilot, "#passphrase", "not the passphrase")
        await pilot.press("enter")
        await until(pilot, lambda: error_of(pilot))
        assert "does not unlock this profile" in error_of(pilot)
        assert isinstance(again.screen, UnlockScreen)
        field = again.screen.query_one("#passphrase")
        field.value = ""  # type: ignore[attr-defined]
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await pilot.press("enter")
        await signed_in(pilot)
        assert again.session is not None and again.session.user == user


async def test_a_taken_id_is_refused_in_place(server: LocalServer, tmp_path: Path) -> None:
    user = new_user("t")
    await create_profile(tmp_path / "first", server.url, user)
    app = make_app(tmp_path / "second")
    async with app.run_test(size=SIZE) as pilot:
        await sign_up(pilot, user, server.url)
        await until(pilot, lambda: error_of(pilot))
        assert "is taken" in error_of(pilot)
        assert isinstance(app.screen, WelcomeScreen)
        assert app.screen.focused is app.screen.query_one("#user")


async def test_wrong_password_says_what_to_do(server: LocalServer, tmp_path: Path) -> None:
    user = new_user("w")
    await create_profile(tmp_path / "first", server.url, user)
    app = make_app(tmp_path / "second")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        screen.query_one("#server").value = server.url  # type: ignore[attr-defined]
        await type_into(pilot, "#user", user)
        await type_into(pilot, "#password", "wrong password")
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#passphrase2", PASSPHRASE)
        await pilot.click("#login")
        await until(pilot, lambda: error_of(pilot))
        assert "Wrong user id or password" in error_of(pilot)
        # Fixing the password in place is enough: the local store is already set up.
        screen.query_one("#password").value = ""  # type: ignore[attr-defined]
        await type_into(pilot, "#password", "correct horse battery staple")
        await pilot.click("#login")
        await signed_in(pilot)
        assert isinstance(app.screen, MainScreen)


async def test_server_down_offers_to_start_one(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{services.free_port()}"
    app = make_app(tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        await sign_up(pilot, new_user(), closed)
        await until(pilot, lambda: error_of(pilot))
        assert "Cannot reach" in error_of(pilot)
        assert "sealchatd all" in error_of(pilot)
        assert app.screen.query_one("#start-server").display
        assert app.screen.focused is app.screen.query_one("#server")


async def test_mismatched_passphrases_are_caught_before_anything_is_sent(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, "#user", "someone")
        await type_into(pilot, "#password", "pw")
        await type_into(pilot, "#passphrase", "one")
        await type_into(pilot, "#passphrase2", "two")
        await pilot.click("#signup")
        await until(pilot, lambda: error_of(pilot))
        assert "differ" in error_of(pilot)
        assert not (tmp_path / "home" / "store.sqlite3").exists()


async def test_friends_online_already_show_as_online_from_the_start(
    server: LocalServer, tmp_path: Path
) -> None:
    alice = new_user("a")
    await create_profile(tmp_path / "alice", server.url, alice)
    bob = await Peer.join(server.url, tmp_path)  # online before Alice starts
    try:
        await bob.client.api.request_friend(alice)

        async def accept(client):  # type: ignore[no-untyped-def]
            await client.api.accept_friend(bob.id)

        await with_profile(tmp_path / "alice", accept)
        app = make_app(tmp_path / "alice")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, UnlockScreen))
            await unlock(pilot)
            # Bob does not connect again: only the snapshot after Alice's auth can tell her.
            await until(pilot, lambda: f"● {bob.id}" in screen_text(pilot))
    finally:
        await bob.close()


def test_a_throttled_login_says_how_long_to_wait() -> None:
    refused = ApiError(
        ErrorCode.THROTTLED.value, "too many failed logins: try again in 14 min 58 s", 429
    )
    explained = explain(refused, "http://127.0.0.1:8080")
    assert explained.message == "Too many failed logins: try again in 14 min 58 s."
    assert explained.field is None
