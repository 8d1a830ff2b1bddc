"""The dialogs and the command palette, on a live session."""

from __future__ import annotations

from textual.command import CommandPalette

from tests.tui.harness import screen_text, type_into, until
from tests.tui.scene import Scene
from tui.dialogs.forms import AskText, PickUsers
from tui.dialogs.settings import DevicesDialog, SettingsDialog
from tui.dialogs.verify import VerifyDialog
from tui.screens.palette import COMMANDS


async def test_the_palette_offers_every_action(scene: Scene) -> None:
    pilot, app = scene.pilot, scene.app
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.pause(0.5)
    shown = screen_text(pilot)
    assert COMMANDS[0][0] in shown  # the list starts with sealchat's own actions
    await type_into(pilot, "CommandInput", "devic")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DevicesDialog))
    session = app.session
    assert session is not None and session.client.device_id is not None
    await until(pilot, lambda: f"{session.client.device_id}" in screen_text(pilot))
    assert "(this device)" in screen_text(pilot)
    await pilot.press("escape")


async def test_add_friend_reports_an_unknown_user(scene: Scene) -> None:
    pilot, app = scene.pilot, scene.app
    await pilot.press("ctrl+f")
    await until(pilot, lambda: isinstance(app.screen, AskText))
    await type_into(pilot, "#answer", "nosuchuser404")
    await pilot.press("enter")
    # The dialog stays open and says why, under the field.
    await until(pilot, lambda: "Check the id" in screen_text(pilot))
    assert isinstance(app.screen, AskText)
    await pilot.press("escape")
    await until(pilot, lambda: not isinstance(app.screen, AskText))


async def test_settings_theme_and_disappearing_timer(scene: Scene) -> None:
    pilot, app, bob = scene.pilot, scene.app, scene.bob
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, SettingsDialog))
    dialog = app.screen
    dialog.query_one("#theme").value = "light"  # type: ignore[attr-defined]
    dialog.query_one("#ttl").value = 300  # type: ignore[attr-defined]
    await pilot.click("#ok")
    await until(pilot, lambda: app.theme == "textual-light")
    await until(pilot, lambda: "⏱ 300s" in screen_text(pilot))
    assert app.session is not None and app.session.store.setting("tui.theme") == "light"
    await scene.say("this one disappears")
    await until(pilot, lambda: bob.texts(scene.room) == ["this one disappears"])
    shown = bob.seen.shown(scene.room)[-1]
    assert shown.content.get("expires_in") == 300


async def test_verify_shows_the_safety_number_and_devices(scene: Scene) -> None:
    pilot, app, bob = scene.pilot, scene.app, scene.bob
    await pilot.press("ctrl+g")  # the open room is 1:1: verify its other member
    await until(pilot, lambda: isinstance(app.screen, VerifyDialog))
    await until(pilot, lambda: bob.e2ee.engine.device_id in screen_text(pilot))
    session = app.session
    assert session is not None and session.e2ee is not None
    number = session.e2ee.engine.safety_number(bob.id)
    # Both sides compute the same number: that is what people compare.
    await bob.e2ee.refresh_devices([session.user])
    assert bob.e2ee.engine.safety_number(session.user) == number
    first_row = " ".join(number.split()[:4])
    assert first_row in screen_text(pilot)
    await pilot.click("#close")


async def test_emoji_verification_between_the_tui_and_a_peer(scene: Scene) -> None:
    pilot, app, bob = scene.pilot, scene.app, scene.bob
    await pilot.press("ctrl+g")
    await until(pilot, lambda: isinstance(app.screen, VerifyDialog))
    await until(pilot, lambda: bob.e2ee.engine.device_id in screen_text(pilot))
    await pilot.click("#sas-start")
    # Bob's device accepts the request it was sent over to-device messages.
    from tui.client.events import VerificationUpdate

    def bob_sas(state: str) -> VerificationUpdate | None:
        for ev in bob.seen.seen:
            if isinstance(ev, VerificationUpdate) and ev.sas.state == state:
                return ev
        return None

    await until(pilot, lambda: bob_sas("requested"))
    request = bob_sas("requested")
    assert request is not None
    bob.e2ee.engine.sas_accept(request.sas.txn)
    await bob.e2ee.flush_to_device()
    await until(pilot, lambda: "Do they see the same" in screen_text(pilot))
    await until(pilot, lambda: bob_sas("keys_exchanged"))
    mine = app.session.e2ee.engine.sas_emoji(request.sas.txn)  # type: ignore[union-attr]
    theirs = bob.e2ee.engine.sas_emoji(request.sas.txn)
    assert mine == theirs and mine
    await pilot.click("#sas-match")
    bob.e2ee.engine.sas_confirm(request.sas.txn)
    await bob.e2ee.flush_to_device()
    await until(pilot, lambda: "is verified" in screen_text(pilot))
    assert "✓ verified" in screen_text(pilot)


async def test_invite_and_remove_in_a_group(scene: Scene) -> None:
    pilot, app, bob = scene.pilot, scene.app, scene.bob
    session = app.session
    assert session is not None
    room = (await session.client.rooms.create("crew"))["id"]
    assert app.main is not None
    await app.main.load_lists()
    app.main.choose_room(room)
    await until(pilot, lambda: scene.chat.room is not None and scene.chat.room.id == room)
    await pilot.press("ctrl+t")
    await until(pilot, lambda: isinstance(app.screen, PickUsers))
    app.screen.query_one("#users").focus()
    await pilot.press("space")
    await pilot.click("#ok")
    await until(pilot, lambda: f"invited {bob.id}" in screen_text(pilot))
    assert room in [i["room"] for i in await bob.client.api.invites()]
    await bob.client.rooms.join(room, bob.id)
    await until(pilot, lambda: f"{bob.id} joined" in screen_text(pilot))
    await until(pilot, lambda: bob.id in scene.chat.members)
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette))
    await type_into(pilot, "CommandInput", "Remove member")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, PickUsers))
    app.screen.query_one("#users").focus()
    await pilot.press("space")
    await pilot.click("#ok")
    await until(pilot, lambda: f"removed {bob.id}" in screen_text(pilot))
    assert room not in {r["id"] for r in await bob.client.api.rooms()}
