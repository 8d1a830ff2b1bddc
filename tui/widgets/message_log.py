"""The chat log: day separators, messages keyed by seq (or msg_id while on their way),
notices; follows the newest message unless the user scrolled up, and asks for older history
when scrolled to the top.

One widget on Textual's Line API: the entries are data (``LogRows``) and only the lines on
screen are drawn, so a burst of messages costs a few lines of layout per message, not a widget
each. A cursor picks a message with the keyboard (Enter or ``s`` saves an attachment); a click
on an attachment saves it too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.widgets.entries import Entry
from tui.widgets.log_rows import DayRow, LogRows, MessageRow, NoticeRow, Row

#: Rows kept while following the newest message; older ones are dropped from the top
#: (scrolling up reloads them from the local cache). Only the lines on screen are drawn, so
#: this bounds memory, not a frame's time: a row is its entry, its text and its height (1.6 KiB
#: measured for a short message), its wrapped lines only while among the rows drawn last
#: (``log_rows.DRAWN_ROWS``).
MAX_ROWS = 2_000
#: Rows kept while the user reads older messages and new ones keep arriving: past this the
#: oldest go anyway, so that a log left scrolled up cannot grow without bound.
HARD_MAX_ROWS = 5_000


class MessageLog(ScrollView, can_focus=True):
    """Holds the entries of one room, in seq order, own pending ones at the end."""

    #: Row styles, set in app.tcss (``#log > .message-log--mine``).
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-log--message",
        "message-log--mine",
        "message-log--undecryptable",
        "message-log--notice",
        "message-log--day",
        "message-log--cursor",
    }
    # Lines are wrapped to the content width: no horizontal scrolling, and a gutter kept for
    # the scroll bar so that its coming and going does not change that width.
    DEFAULT_CSS = """
    MessageLog {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Select", key_display="↑↓"),
        Binding("down,j", "cursor(1)", "Select", show=False),
        Binding("enter,s", "save", "Save file"),
    ]

    class NeedOlder(Message):
        """Scrolled to the top: load the page before ``oldest_seq``."""

        def __init__(self, before: int) -> None:
            super().__init__()
            self.before = before

    @dataclass
    class SaveRequested(Message):
        """Save this attachment (chosen with Enter or ``s``, or clicked)."""

        entry: Entry

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.log_rows = LogRows()
        self._styles: dict[tuple[str, ...], Style] = {}
        self.cursor: MessageRow | None = None
        """The message chosen with the keyboard (drawn while the log has focus)."""
        self.exhausted = False
        """No older history to load."""
        self.loading_older = False

    def on_mount(self) -> None:
        self.anchor()

    # --- queries -----------------------------------------------------------------------------
    @property
    def oldest_seq(self) -> int | None:
        return min(self.log_rows.by_seq) if self.log_rows.by_seq else None

    @property
    def newest_seq(self) -> int:
        return max(self.log_rows.by_seq) if self.log_rows.by_seq else 0

    def entry(self, *, seq: int | None = None, msg_id: str = "") -> Entry | None:
        """The entry shown for ``seq``, else for ``msg_id`` (own, not delivered yet)."""
        row = self.log_rows.find(seq=seq, msg_id=msg_id)
        return row.entry if row is not None else None

    def entries(self) -> list[Entry]:
        """Every message entry in the log, oldest first."""
        return list(self.log_rows.entries())

    def seqs(self) -> list[int]:
        return sorted(self.log_rows.by_seq)

    @property
    def following(self) -> bool:
        """Showing the newest message (the user did not scroll up to read older ones)."""
        return self.max_scroll_y <= 0 or self.scroll_y >= self.max_scroll_y - 1

    # --- changes -----------------------------------------------------------------------------
    def clear_log(self) -> None:
        self.log_rows.clear()
        self.cursor = None
        self.exhausted = False
        self.loading_older = False
        self._relayout(follow=True)

    def put(self, entries: list[Entry]) -> None:
        """Show ``entries`` (newer than what is shown, or updates of shown ones) at the end."""
        follow = self.following
        rows = self.log_rows
        new: list[Row] = []
        day = rows.last_day()
        changed: list[MessageRow] = []
        for entry in entries:
            existing = rows.find(seq=entry.seq, msg_id=entry.msg_id)
            if existing is not None:
                if existing.entry.state == "delivered" and entry.seq is None:
                    continue  # a late delivery mark never overwrites the server's copy
                existing.show(entry)
                rows.index(existing)
                changed.append(existing)
                continue
            if entry.day != day:
                day = entry.day
                new.append(DayRow(day))
            row = MessageRow(entry)
            rows.index(row)
            new.append(row)
        if new:
            rows.append(new)
            self._trim(follow)
            self._relayout(follow)
        elif changed:
            self._redraw(changed, follow)

    def put_older(self, entries: list[Entry]) -> None:
        """Prepend a page of older entries (oldest first), with their day separators."""
        self.loading_older = False
        rows = self.log_rows
        fresh = [e for e in entries if e.seq is None or e.seq not in rows.by_seq]
        if not fresh:
            self.exhausted = True
            return
        follow = self.following
        new: list[Row] = []
        day: str | None = None
        for entry in fresh:
            if entry.day != day:
                day = entry.day
                new.append(DayRow(day))
            row = MessageRow(entry)
            rows.index(row)
            new.append(row)
        before = self.virtual_size.height
        rows.prepend(new)
        # What the user was reading stays where it was: the new lines go above the view.
        self._relayout(follow, shift=True, lines_before=before)

    def notice(self, text: str, ts: datetime | None = None) -> None:
        follow = self.following
        self.log_rows.append([NoticeRow(text, ts)])
        self._trim(follow)
        self._relayout(follow)

    def _trim(self, follow: bool) -> None:
        rows = self.log_rows
        excess = len(rows) - (MAX_ROWS if follow else HARD_MAX_ROWS)
        if excess <= 0:
            return
        width, console = self._content_width(), self.app.console
        lines_before = 0 if follow else rows.layout(width, console)
        dropped = rows.drop_front(excess)
        if self.cursor in dropped:
            self.cursor = None
        self.exhausted = False
        if lines_before:
            # Keep the lines on screen in place: everything moved up by what was dropped.
            gone = lines_before - rows.layout(width, console)
            self._scroll_now(self.scroll_y - gone)

    # --- layout and drawing ------------------------------------------------------------------
    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _relayout(self, follow: bool, *, shift: bool = False, lines_before: int = 0) -> None:
        """New virtual size after rows came or went; follow the newest, or keep the view."""
        width = self._content_width()
        total = self.log_rows.layout(width, self.app.console)
        self.virtual_size = Size(width, total)
        if follow:
            self._scroll_now(self.max_scroll_y, release=False)
        elif shift:
            added = total - lines_before
            self._scroll_now(self.scroll_y + added)
        self.refresh()

    def _scroll_now(self, y: float, *, release: bool = True) -> None:
        """Scroll at once, before the next layout (which would show the scroll bar that
        scrolling otherwise waits for). Following the newest keeps the anchor."""
        if release:
            self.release_anchor()
        self.scroll_target_y = self.scroll_y = max(0, min(y, self.max_scroll_y))

    def _redraw(self, changed: list[MessageRow], follow: bool) -> None:
        """Entries updated in place: redraw their lines, or relayout if a height changed."""
        width, console = self._content_width(), self.app.console
        rows = self.log_rows
        if not rows.laid_out(width):
            self._relayout(follow)
            return
        spans = []
        for row in changed:
            start, height = rows.span(rows.rows.index(row))
            if row.height(width, console) != height:
                rows.changed()
                # A row above the view changed height: move the view with what it shows.
                above = start + height <= self.scroll_y and not follow
                self._relayout(follow, shift=above, lines_before=self._total())
                return
            spans.append((start, height))
        for start, height in spans:
            self._refresh_span(start, height)

    def _total(self) -> int:
        return self.virtual_size.height

    def on_resize(self, event: events.Resize) -> None:
        # Heights at the new width are needed now (for the scroll bar); each row's lines are
        # wrapped again only when drawn.
        self._relayout(self.following)

    def _line_at(self, y: int) -> int:
        """The log's line drawn at ``y`` of the view: a short log sits at the bottom, as chats
        do, so the newest message is always where the eye expects it."""
        gap = max(0, self.scrollable_content_region.height - self._total())
        return self.scroll_offset.y + y - gap

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        found = self.log_rows.at(self._line_at(y))
        if found is None:
            return Strip.blank(width, self._style(()))
        index, offset = found
        row = self.log_rows.rows[index]
        names = row.style_names()
        if row is self.cursor and self.has_focus:
            names += ("message-log--cursor",)
        self.log_rows.drawn(row)
        return row.line(offset, width, self._style(names), self.app.console)

    def _style(self, names: tuple[str, ...]) -> Style:
        """The widget's style under these component styles (backgrounds blended); cached
        until the styles change, since every line drawn asks."""
        style = self._styles.get(names)
        if style is None:
            style = self.rich_style
            for name in names:
                style += self.get_component_rich_style(name)
            self._styles[names] = style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def on_focus(self) -> None:
        self._refresh_cursor()

    def on_blur(self) -> None:
        self._refresh_cursor()

    def _refresh_cursor(self) -> None:
        rows = self.log_rows
        if self.cursor in rows.rows and rows.laid_out(self._content_width()):
            self._refresh_span(*rows.span(rows.rows.index(self.cursor)))

    def _refresh_span(self, start: int, height: int) -> None:
        """Redraw lines ``start`` to ``start + height`` of the log (not of the view)."""
        gap = max(0, self.scrollable_content_region.height - self._total())
        self.refresh_lines(start + gap, height)

    # --- following and infinite scroll -------------------------------------------------------
    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.is_anchored and new >= self.max_scroll_y:
            self.anchor()  # back at the bottom: follow new messages again
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

    # --- choosing and saving -----------------------------------------------------------------
    def action_cursor(self, step: int) -> None:
        """Move the cursor to the next (``1``) or previous (``-1``) message, into view."""
        rows = self.log_rows.rows
        messages = [i for i, row in enumerate(rows) if isinstance(row, MessageRow)]
        if not messages:
            return
        if self.cursor is None or self.cursor not in rows:
            index = self._message_near_view(messages)
        else:
            at = messages.index(rows.index(self.cursor))
            index = messages[max(0, min(len(messages) - 1, at + step))]
        self._select(rows[index])
        if step < 0 and index == messages[0] and self.scroll_y <= 0:
            self.ask_older()

    def _message_near_view(self, messages: list[int]) -> int:
        """The last message that starts at or above the bottom of the view."""
        found = self.log_rows.at(
            min(self._line_at(self.scrollable_content_region.height - 1), self._total() - 1)
        )
        if found is None:
            return messages[-1]
        candidates = [i for i in messages if i <= found[0]]
        return candidates[-1] if candidates else messages[0]

    def _select(self, row: Row) -> None:
        if not isinstance(row, MessageRow):
            return
        previous, self.cursor = self.cursor, row
        self.refresh_bindings()
        if not self.log_rows.laid_out(self._content_width()):
            return
        if previous is not None and previous in self.log_rows.rows:
            self._refresh_span(*self.log_rows.span(self.log_rows.rows.index(previous)))
        start, height = self.log_rows.span(self.log_rows.rows.index(row))
        self._refresh_span(start, height)
        self.scroll_to_region(
            Region(0, start, self._content_width(), height), animate=False, immediate=True
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save":
            cursor = self.cursor
            return True if cursor is not None and cursor.entry.kind == "file" else None
        return True

    def action_save(self) -> None:
        if self.cursor is not None and self.cursor.entry.kind == "file":
            self.post_message(self.SaveRequested(self.cursor.entry))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        found = self.log_rows.at(self._line_at(offset.y))
        if found is None:
            return
        row = self.log_rows.rows[found[0]]
        if isinstance(row, MessageRow):
            self._select(row)
            if row.entry.kind == "file":
                event.stop()
                self.post_message(self.SaveRequested(row.entry))
