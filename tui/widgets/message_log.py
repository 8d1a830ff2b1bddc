"""The chat log: day separators, messages keyed by seq (or msg_id while on their way),
notices; follows the newest message unless the user scrolled up (``anchor``), and asks for
older history when scrolled to the top."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from tui.widgets.entries import Entry, notice_text, render_entry

#: Widgets kept in the log; older ones are dropped from the top (scrolling up reloads them).
#: Every layout of the log walks all of them: a few screens' worth keeps a burst smooth.
MAX_ITEMS = 200


class DaySeparator(Static):
    def __init__(self, day: str) -> None:
        super().__init__(f"── {day} ──", classes="day")
        self.day = day


class Notice(Static):
    def __init__(self, text: str, ts: datetime | None = None) -> None:
        super().__init__(notice_text(text, ts), classes="notice")


class MessageItem(Static):
    """One message; focusable (and clickable) when it carries an attachment to save."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter,s", "save", "Save file")]

    @dataclass
    class SaveRequested(Message):
        entry: Entry

    def __init__(self, entry: Entry) -> None:
        super().__init__(render_entry(entry), classes=self._class_names(entry))
        self.entry = entry
        self.can_focus = entry.kind == "file"

    @staticmethod
    def _class_names(entry: Entry) -> str:
        names = ["msg", entry.kind]
        if entry.mine:
            names.append("mine")
        return " ".join(names)

    def show(self, entry: Entry) -> None:
        self.entry = entry
        self.set_classes(self._class_names(entry))
        self.can_focus = entry.kind == "file"
        self.update(render_entry(entry))

    def action_save(self) -> None:
        if self.entry.kind == "file":
            self.post_message(self.SaveRequested(self.entry))

    def on_click(self, event: events.Click) -> None:
        if self.entry.kind == "file":
            event.stop()
            self.post_message(self.SaveRequested(self.entry))


class MessageLog(VerticalScroll, can_focus=True):
    """Holds the entries of one room, in seq order, own pending ones at the end."""

    class NeedOlder(Message):
        """Scrolled to the top: load the page before ``oldest_seq``."""

        def __init__(self, before: int) -> None:
            super().__init__()
            self.before = before

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.by_seq: dict[int, MessageItem] = {}
        self.by_msg_id: dict[str, MessageItem] = {}
        self.exhausted = False
        """No older history to load."""
        self.loading_older = False

    def on_mount(self) -> None:
        self.anchor()

    # --- queries -----------------------------------------------------------------------------
    @property
    def oldest_seq(self) -> int | None:
        return min(self.by_seq) if self.by_seq else None

    @property
    def newest_seq(self) -> int:
        return max(self.by_seq) if self.by_seq else 0

    def item(self, *, seq: int | None = None, msg_id: str = "") -> MessageItem | None:
        if seq is not None and seq in self.by_seq:
            return self.by_seq[seq]
        if msg_id:
            return self.by_msg_id.get(msg_id)
        return None

    def _last_day(self) -> str | None:
        for child in reversed(self.children):
            if isinstance(child, DaySeparator):
                return child.day
        return None

    # --- changes -----------------------------------------------------------------------------
    def clear_log(self) -> None:
        self.by_seq.clear()
        self.by_msg_id.clear()
        self.exhausted = False
        self.loading_older = False
        self.remove_children()

    def put(self, entries: list[Entry]) -> None:
        """Show ``entries`` (newer than what is shown, or updates of shown ones) at the end."""
        new: list[Widget] = []
        day = self._last_day()
        for entry in entries:
            existing = self.item(seq=entry.seq, msg_id=entry.msg_id)
            if existing is not None:
                if existing.entry.state == "delivered" and entry.seq is None:
                    continue  # a late delivery mark never overwrites the server's copy
                self._index(existing, entry)
                existing.show(entry)
                continue
            if entry.day != day:
                day = entry.day
                new.append(DaySeparator(day))
            item = MessageItem(entry)
            self._index(item, entry)
            new.append(item)
        if new:
            self.mount_all(new)
            self._trim()

    def put_older(self, entries: list[Entry]) -> None:
        """Prepend a page of older entries (oldest first), with their day separators."""
        self.loading_older = False
        fresh = [e for e in entries if e.seq is None or e.seq not in self.by_seq]
        if not fresh:
            self.exhausted = True
            return
        new: list[Widget] = []
        day: str | None = None
        for entry in fresh:
            if entry.day != day:
                day = entry.day
                new.append(DaySeparator(day))
            item = MessageItem(entry)
            self._index(item, entry)
            new.append(item)
        first = self.children[0] if self.children else None
        if isinstance(first, DaySeparator) and first.day == day:
            first.remove()
        if self.children:
            self.mount_all(new, before=0)
        else:
            self.mount_all(new)

    def notice(self, text: str, ts: datetime | None = None) -> None:
        self.mount(Notice(text, ts))
        self._trim()

    def _index(self, item: MessageItem, entry: Entry) -> None:
        if entry.seq is not None:
            self.by_seq[entry.seq] = item
        if entry.msg_id:
            self.by_msg_id[entry.msg_id] = item

    def _trim(self) -> None:
        excess = len(self.children) - MAX_ITEMS
        if excess <= 0 or not self.following:
            return
        drop = list(self.children[:excess])
        for child in drop:
            if isinstance(child, MessageItem):
                if child.entry.seq is not None:
                    self.by_seq.pop(child.entry.seq, None)
                self.by_msg_id.pop(child.entry.msg_id, None)
        self.exhausted = False
        self.remove_children(drop)

    @property
    def following(self) -> bool:
        """Showing the newest message (the user did not scroll up to read older ones)."""
        # Anchored content shorter than the view sits at the bottom (a negative scroll_y).
        return self.max_scroll_y <= 0 or self.scroll_y >= self.max_scroll_y - 1

    # --- infinite scroll ---------------------------------------------------------------------
    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new <= 0 < old:
            self.ask_older()

    def ask_older(self) -> None:
        oldest = self.oldest_seq
        if self.exhausted or self.loading_older or oldest is None or oldest <= 1:
            if oldest is not None and oldest <= 1:
                self.exhausted = True
            return
        self.loading_older = True
        self.post_message(self.NeedOlder(oldest))
