"""What each screen looks like, at 80x24 and at 120x40 (Textual is pinned in
constraints.txt so the pictures only change when the client does).

Update after an intended change: ``SEALCHAT_SNAPSHOT_UPDATE=1 pytest
tests/tui/test_snapshots.py``, then look at the new SVGs before committing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from tests.tui.harness import (
    PASSPHRASE,
    LocalServer,
    Peer,
    create_profile,
    make_app,
    type_into,
    until,
    with_profile,
)
from tests.tui.snapshots import assert_snapshot
from tui.client.profile import Profile, ProfileConfig
from tui.widgets.entries import Entry
from tui.widgets.message_log import MessageLog


def _name(screen: str, size: tuple[int, int]) -> str:
    return f"test_{screen}[{size[0]}x{size[1]}]"


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
async def test_first_run(tmp_path: Path, size: tuple[int, int]) -> None:
    await assert_snapshot(make_app(tmp_path / "home"), _name("first_run", size), size)


@pytest.mark.parametrize("size", SIZES)
async def test_unlock(tmp_path: Path, size: tuple[int, int]) -> None:
    home = tmp_path / "home"
    Profile(home).save_config(ProfileConfig("http://127.0.0.1:8080", "alice", "SCALICE001"))
    await assert_snapshot(make_app(home), _name("unlock", size), size)


@pytest.fixture(scope="module")
def world(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Alice's profile: friends with Bob (offline now), a group and a 1:1 room, an invite."""
    home = tmp_path_factory.mktemp("snap")

    async def build() -> None:
        await create_profile(home / "alice", server.url, "snapalice")
        bob = await Peer.join(server.url, home, "snapbob")
        carol = await Peer.join(server.url, home, "snapcarol")
        try:
            await bob.client.api.request_friend("snapalice")
            await carol.client.api.request_friend("snapalice")
            await with_profile(home / "alice", lambda c: c.api.accept_friend("snapbob"))
            group = (await bob.client.rooms.create("night owls"))["id"]
            await bob.client.rooms.invite(group, "snapalice")
            direct = (await bob.client.rooms.direct("snapalice"))["id"]
            await bob.client.send(direct, {"body": "are you there?"})
        finally:
            await bob.close()
            await carol.close()

    asyncio.run(build())
    yield home / "alice"


async def _unlocked(pilot: Pilot[Any]) -> None:
    from tui.widgets.lists import RoomList

    await type_into(pilot, "#passphrase", PASSPHRASE)
    await pilot.press("enter")
    app = pilot.app

    def settled() -> bool:
        lists = app.screen.query(RoomList)
        return (
            bool(lists)
            and any(
                "are you there?" in str(getattr(o.prompt, "plain", o.prompt))
                for o in lists.first().options
            )
            and app.session is not None
            and app.session.client.state == "online"
        )

    await until(pilot, settled)
    await pilot.pause(0.5)


@pytest.mark.parametrize("size", SIZES)
async def test_main_screen(world: Path, size: tuple[int, int]) -> None:
    await assert_snapshot(make_app(world), _name("main_screen", size), size, _unlocked)


T0 = datetime(2026, 11, 21, 23, 58, tzinfo=UTC)


class LogOnly(App[None]):
    """The chat log alone, fed fixed entries (real server timestamps would change daily)."""

    CSS_PATH = str(Path(__file__).parents[2] / "tui" / "app.tcss")

    def compose(self) -> ComposeResult:
        yield MessageLog(id="log")

    def on_mount(self) -> None:
        log = self.query_one(MessageLog)
        ts = T0
        rows = [
            Entry("bob", ts, "night, everyone", seq=1),
            Entry(
                "carol",
                ts + timedelta(minutes=1),
                seq=2,
                kind="undecryptable",
                problem="cannot decrypt yet (waiting for keys from carol/PHONE)",
            ),
            Entry("alice", ts + timedelta(minutes=3), "morning!\nsecond line", seq=3, mine=True),
            Entry(
                "bob",
                ts + timedelta(minutes=4),
                "sent a file: notes.pdf",
                seq=4,
                kind="file",
                content={"type": "file", "name": "notes.pdf", "size": 48213, "file": {}},
            ),
            Entry(
                "alice",
                ts + timedelta(minutes=5),
                "on its way",
                msg_id="m1",
                mine=True,
                state="sending",
            ),
            Entry(
                "alice",
                ts + timedelta(minutes=5),
                "typed offline",
                msg_id="m2",
                mine=True,
                state="queued",
            ),
        ]
        log.put(rows)
        log.notice("bob invited dave · 3 members", ts + timedelta(minutes=6))


@pytest.mark.parametrize("size", SIZES)
async def test_chat_log(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        await assert_snapshot(LogOnly(), _name("chat_log", size), size)
    finally:
        monkeypatch.undo()
        time.tzset()
