"""The virtualised chat log driven as a user would, alone in a small app: history paged in
from a fake cache, keys and clicks, resizes. (The chat tests drive it through a real server.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from tests.tui.harness import screen_text, until
from tui.widgets.entries import Entry
from tui.widgets.message_log import HARD_MAX_ROWS, MAX_ROWS, MessageLog

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FILE = {"type": "file", "name": "notes.pdf", "size": 48213, "file": {}}


def message(seq: int, text: str = "", **kw: Any) -> Entry:
    return Entry("bob", T0 + timedelta(seconds=seq), text or f"m{seq:03d}", seq=seq, **kw)


class LogApp(App[None]):
    """A log over a history of ``history`` messages; ``shown`` newest ones put at start."""

    CSS_PATH = str(Path(__file__).parents[2] / "tui" / "app.tcss")

    def __init__(self, history: int = 0, shown: int = 0) -> None:
        super().__init__()
        self.history = [message(seq) for seq in range(1, history + 1)]
        self.shown = shown
        self.saved: list[Entry] = []
        self.asked: list[int] = []

    def compose(self) -> ComposeResult:
        yield MessageLog(id="log")

    @property
    def log_widget(self) -> MessageLog:
        return self.query_one(MessageLog)

    def on_mount(self) -> None:
        if self.shown:
            self.log_widget.put(self.history[-self.shown :])

    @on(MessageLog.NeedOlder)
    def _older(self, event: MessageLog.NeedOlder) -> None:
        self.asked.append(event.before)
        page = [e for e in self.history if e.seq is not None and e.seq < event.before][-50:]
        self.log_widget.put_older(page)

    @on(MessageLog.SaveRequested)
    def _save(self, event: MessageLog.SaveRequested) -> None:
        self.saved.append(event.entry)


def visible(pilot: Pilot[Any]) -> str:
    return screen_text(pilot)


def shown_seqs(pilot: Pilot[Any]) -> list[int]:
    """The messages on screen, by the number in their text (``m123``)."""
    return [int(m) for m in re.findall(r"\bm(\d+)\b", visible(pilot))]


async def test_follows_the_newest_until_scrolled_up() -> None:
    app = LogApp(history=100, shown=60)
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        await pilot.pause()
        assert log.following and "m100" in visible(pilot)
        log.put([message(101)])
        await pilot.pause()
        assert log.following and "m101" in visible(pilot)
        log.scroll_up(animate=False, immediate=True)
        log.scroll_up(animate=False, immediate=True)
        await pilot.pause()
        assert not log.following
        log.put([message(102)])
        await pilot.pause()
        assert not log.following and "m102" not in visible(pilot)
        log.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        log.put([message(103)])
        await pilot.pause()
        assert log.following and "m103" in visible(pilot)


async def test_scrolling_to_the_top_loads_older_and_keeps_the_view() -> None:
    app = LogApp(history=120, shown=50)
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        await pilot.pause()
        assert log.oldest_seq == 71
        log.scroll_home(animate=False, immediate=True)
        await until(pilot, lambda: log.oldest_seq == 21)
        await pilot.pause()
        # The lines read before the page came are still on screen, where they were.
        assert "m071" in visible(pilot) and "m020" not in visible(pilot)
        assert log.scroll_y > 0
        log.scroll_home(animate=False, immediate=True)
        await until(pilot, lambda: log.oldest_seq == 1)
        assert log.seqs() == list(range(1, 121))
        log.scroll_down(animate=False, immediate=True)
        log.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert log.exhausted and app.asked == [71, 21]
        # One day separator on top, none repeated where the pages meet.
        assert sum(1 for line in screen_text(pilot).splitlines() if "──" in line) <= 1


async def test_cursor_and_enter_save_an_attachment() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        log.put([message(1), message(2, "a file", kind="file", content=FILE), message(3)])
        log.focus()
        await pilot.pause()
        await pilot.press("up")  # the newest message first
        assert log.cursor is not None and log.cursor.entry.seq == 3
        await pilot.press("enter")  # not a file: nothing to save
        await pilot.press("k")
        assert log.cursor.entry.seq == 2
        await pilot.press("enter")
        await pilot.press("j", "s")
        await pilot.press("up", "s")
        await pilot.pause()
        assert [e.seq for e in app.saved] == [2, 2]
        # The footer-facing binding is offered only on a file.
        assert log.check_action("save", ()) is True
        await pilot.press("down")
        assert log.check_action("save", ()) is None


async def test_a_click_on_an_attachment_saves_it() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        log.put([message(1), message(2, "a file", kind="file", content=FILE), message(3)])
        await pilot.pause()
        lines = visible(pilot).splitlines()
        row = next(i for i, line in enumerate(lines) if "📎" in line)
        assert await pilot.click(MessageLog, offset=(10, row - log.region.y))
        await pilot.pause()
        assert [e.seq for e in app.saved] == [2]
        row = next(i for i, line in enumerate(lines) if "m003" in line)
        await pilot.click(MessageLog, offset=(10, row - log.region.y))  # not a file
        await pilot.pause()
        assert [e.seq for e in app.saved] == [2]
        assert log.cursor is not None and log.cursor.entry.seq == 3


async def test_a_long_message_wraps_and_rewraps_on_resize() -> None:
    words = " ".join(f"word{n}" for n in range(40))
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        log.put([message(1, words), message(2, "after")])
        await pilot.pause()
        text = visible(pilot)
        assert "word0" in text and "word39" in text and "after" in text
        wide = log.virtual_size.height
        assert wide >= 2 + 5  # the day separator, and the long message on several lines
        await pilot.resize_terminal(30, 20)
        await pilot.pause()
        assert log.virtual_size.height > wide
        assert all(len(line.rstrip()) <= 30 for line in visible(pilot).splitlines())
        assert "word39" in visible(pilot) and "after" in visible(pilot)
        await pilot.resize_terminal(100, 20)
        await pilot.pause()
        assert log.virtual_size.height < wide


async def test_delivery_states_update_in_place() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        mine = Entry("alice", T0, "hello", msg_id="x1", mine=True, state="sending")
        log.put([message(1), mine])
        await until(pilot, lambda: "hello  …" in visible(pilot))
        log.put([Entry("alice", T0, "hello", msg_id="x1", mine=True, state="accepted")])
        await until(pilot, lambda: "hello  ✓" in visible(pilot))
        log.put([Entry("alice", T0, "hello", seq=2, msg_id="x1", mine=True)])
        await until(pilot, lambda: "hello  ✓✓" in visible(pilot))
        # A late "accepted" never overwrites the server's copy.
        log.put([Entry("alice", T0, "hello", msg_id="x1", mine=True, state="accepted")])
        await pilot.pause()
        assert "hello  ✓✓" in visible(pilot)
        assert [e.seq for e in log.entries()] == [1, 2] and log.newest_seq == 2
        # Keys arrived: the undecryptable entry becomes the message, in place.
        log.put([Entry("carol", T0, seq=3, kind="undecryptable", problem="waiting for keys")])
        await until(pilot, lambda: "waiting for keys" in visible(pilot))
        log.put([message(3, "now readable")])
        await until(pilot, lambda: "now readable" in visible(pilot))
        assert "waiting for keys" not in visible(pilot)


async def test_a_burst_is_trimmed_to_the_newest_while_following() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        for start in range(1, MAX_ROWS + 500, 100):
            log.put([message(seq) for seq in range(start, start + 100)])
        await pilot.pause()
        assert len(log.log_rows) <= MAX_ROWS + 1 and log.following
        assert log.newest_seq == MAX_ROWS + 500 and not log.exhausted
        assert "──" in str(log.log_rows.rows[0].text)  # the top keeps its day separator
        # Rows far off screen kept only their height: scrolled back to, they are drawn again.
        log.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        oldest = log.oldest_seq
        assert oldest is not None and f"m{oldest:03d}" in visible(pilot)


async def test_a_log_left_scrolled_up_is_trimmed_without_moving_the_view() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.log_widget
        log.put([message(seq) for seq in range(1, MAX_ROWS)])
        await pilot.pause()
        log.scroll_to(y=log.max_scroll_y - 30, animate=False, immediate=True)
        await pilot.pause()
        before = shown_seqs(pilot)
        assert before and not log.following and MAX_ROWS - 1 not in before
        for start in range(MAX_ROWS, HARD_MAX_ROWS + 500, 500):
            log.put([message(seq) for seq in range(start, start + 500)])
        await pilot.pause()
        assert len(log.log_rows) <= HARD_MAX_ROWS + 1 and log.oldest_seq is not None
        assert log.oldest_seq > 1 and not log.following
        assert shown_seqs(pilot) == before  # what the user reads stays put
