"""Friends, rooms and messages, typed in the TUI and answered by a real peer device."""

from __future__ import annotations

from pathlib import Path

from tests.tui.harness import screen_text, type_into, until
from tests.tui.scene import Scene
from tui.client.files import upload_file
from tui.dialogs.forms import Confirm, PickUsers
from tui.widgets.lists import RoomList
from tui.widgets.message_log import MessageLog


async def test_messages_both_ways_with_delivery_marks(scene: Scene) -> None:
    pilot, bob = scene.pilot, scene.bob
    await scene.say("hello bob")
    # sending → accepted → delivered: the server's copy came back and replaced the draft.
    await until(pilot, lambda: "hello bob  ✓✓" in screen_text(pilot))
    await until(pilot, lambda: bob.texts(scene.room) == ["hello bob"])
    await bob.client.send(scene.room, {"body": "hi alice"})
    await until(pilot, lambda: f"{bob.id}  hi alice" in screen_text(pilot))
    text = screen_text(pilot)
    assert "(you)  hello bob" in text
    assert "──" in text  # the day separator above the first message


async def test_multi_line_message_and_typing_indicator(scene: Scene) -> None:
    pilot, bob = scene.pilot, scene.bob
    await type_into(pilot, "#composer", "first line")
    await pilot.press("ctrl+j")
    await type_into(pilot, "#composer", "second line")
    await pilot.press("enter")
    await until(pilot, lambda: bob.texts(scene.room) == ["first line\nsecond line"])
    await bob.client.request("typing", room=scene.room, active=True)
    await until(pilot, lambda: f"{bob.id} is typing…" in screen_text(pilot))
    await bob.client.send(scene.room, {"body": "done typing"})
    await until(pilot, lambda: "done typing" in scene.log_text())
    await until(pilot, lambda: "is typing" not in screen_text(pilot))


async def test_unread_counts_and_read_markers(scene: Scene) -> None:
    pilot, bob = scene.pilot, scene.bob
    room = scene.room
    scene.app.screen.query_one(RoomList).focus()
    scene.app.main.close_room()  # type: ignore[union-attr]
    for n in range(3):
        await bob.client.send(room, {"body": f"unseen {n}"})
    await until(pilot, lambda: "(3)" in screen_text(pilot))
    assert f"{bob.id}: unseen 2" in screen_text(pilot)  # the last message's preview
    await pilot.press("enter")  # open it again from the rooms list
    await until(pilot, lambda: "unseen 2" in scene.log_text())
    await until(pilot, lambda: "(3)" not in screen_text(pilot))
    # The read marker reached the server: bob is told, and a fresh list agrees.
    session = scene.app.session
    assert session is not None
    await until(
        pilot,
        lambda: any(
            getattr(e, "user", None) == session.user and getattr(e, "seq", 0) >= 3
            for e in bob.seen.seen
        ),
    )
    mine = {r["id"]: r["read_seq"] for r in await session.client.api.rooms()}
    assert mine[room] >= 3


async def test_attachment_is_saved_decrypted(scene: Scene, tmp_path: Path) -> None:
    pilot, bob = scene.pilot, scene.bob
    src = tmp_path / "notes.txt"
    src.write_bytes(b"secret notes\n" * 100)
    content = await upload_file(bob.client.api, scene.room, src)
    await bob.client.send(scene.room, {**content})
    await until(pilot, lambda: "📎 notes.txt" in screen_text(pilot))
    # The newest message is the file: the log's cursor starts there.
    scene.chat.log_widget.focus()
    await pilot.press("up")
    await pilot.press("enter")
    saved = scene.app.downloads / "notes.txt"
    await until(pilot, lambda: saved.exists())
    assert saved.read_bytes() == src.read_bytes()


async def test_scrolling_up_loads_older_history(scene: Scene) -> None:
    pilot, bob = scene.pilot, scene.bob
    for n in range(70):
        await bob.client.send(scene.room, {"body": f"m{n:02d}"})
    await until(pilot, lambda: "m69" in scene.log_text())
    # Reopen: the log starts with the newest page only and stays at the bottom.
    chat = scene.chat
    assert chat.room is not None
    chat.open(chat.room)
    await pilot.pause(0.3)
    log = scene.app.screen.query_one(MessageLog)
    assert "m69" in scene.log_text() and "m00" not in scene.log_text()
    assert log.following
    log.scroll_home(animate=False)
    await until(pilot, lambda: "m00" in scene.log_text())
    seqs = log.seqs()
    assert seqs == list(range(seqs[0], seqs[-1] + 1))  # no hole, no duplicate


async def test_group_room_create_invite_join_and_delete(scene: Scene) -> None:
    pilot, bob = scene.pilot, scene.bob
    app = scene.app
    await pilot.press("ctrl+n")
    await until(pilot, lambda: isinstance(app.screen, PickUsers))
    await type_into(pilot, "#name", "night owls")
    app.screen.query_one("#users").focus()
    await pilot.press("space")
    await pilot.click("#ok")
    await until(pilot, lambda: scene.chat.room is not None and scene.chat.room.name == "night owls")
    room = scene.room
    invites = await bob.client.api.invites()
    assert [i["room"] for i in invites] == [room]
    await bob.client.rooms.join(room, bob.id)
    await until(pilot, lambda: f"{bob.id} joined · 2 members" in screen_text(pilot))
    assert "2 members" in screen_text(pilot)
    # Deleting asks first, with the warning, and Cancel is the default.
    await pilot.press("ctrl+p")
    await pilot.pause(0.3)
    await type_into(pilot, "CommandInput", "Delete room")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, Confirm))
    assert "cannot be undone" in screen_text(pilot)
    assert app.screen.focused is app.screen.query_one("#cancel")
    await pilot.click("#ok")
    await until(pilot, lambda: scene.chat.room is None)
    await until(pilot, lambda: "night owls" not in screen_text(pilot))
    assert room not in {r["id"] for r in await bob.client.api.rooms()}
