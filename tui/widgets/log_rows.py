"""The chat log as data: rows (day separators, messages, notices) kept in order, each wrapped
to lines at the log's width only when needed and cached, with cumulative line offsets so that
the row under any line is found by bisect. No widget here: ``MessageLog`` draws what this lays
out, a screenful at a time."""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from tui.widgets.entries import Entry, notice_text, render_entry

#: Rows whose wrapped lines are kept (several screens' worth); the others keep only their
#: height. A drawn line is a few dozen small objects: kept for thousands of rows, they cost
#: memory and lengthen every full pass of the cyclic garbage collector.
DRAWN_ROWS = 256


class Row:
    """One row of the log: its text, and that text wrapped to the last width asked for."""

    #: The log's component class that styles this kind of row (see ``MessageLog``).
    component = ""

    def __init__(self, text: Text) -> None:
        self.text = text
        self._width = 0
        self._height = 0
        self._lines: list[Strip] | None = None
        self._styled: tuple[Style, list[Strip | None]] | None = None
        """The lines as last drawn, padded and styled (one style at a time: it changes only
        with the cursor, the focus or the theme)."""

    @property
    def leading_blank(self) -> int:
        """Blank lines drawn above the text (a margin)."""
        return 0

    def style_names(self) -> tuple[str, ...]:
        return (self.component,)

    def invalidate(self) -> None:
        self._width = 0
        self.forget_lines()

    def forget_lines(self) -> None:
        """Drop the wrapped lines (kept: the height at the last width)."""
        self._lines = None
        self._styled = None

    def height(self, width: int, console: Console) -> int:
        """Lines at ``width``; one-line text that fits is counted without wrapping it."""
        if width != self._width:
            self._width, self._lines, self._styled = width, None, None
            plain = self.text.plain
            if "\n" not in plain and self.text.cell_len <= width:
                self._height = 1 + self.leading_blank
            else:
                self._height = len(self.lines(width, console))
                self._lines = None  # kept only once drawn (see LogRows.drawn)
        return self._height

    def lines(self, width: int, console: Console) -> list[Strip]:
        """The text wrapped to ``width``, unstyled beyond its own spans (the log adds the rest)."""
        if width != self._width or self._lines is None:
            options = console.options.update_width(max(width, 1))
            wrapped = Segment.split_lines(console.render(self.text, options))
            lines = [Strip.blank(0)] * self.leading_blank
            lines.extend(Strip(line) for line in wrapped)
            self._width, self._lines, self._styled = width, lines or [Strip.blank(0)], None
            self._height = len(self._lines)
        return self._lines

    def line(self, offset: int, width: int, style: Style, console: Console) -> Strip:
        """Line ``offset`` at ``width``, padded to it, over ``style``."""
        lines = self.lines(width, console)
        if self._styled is None or self._styled[0] != style:
            self._styled = (style, [None] * len(lines))
        drawn = self._styled[1]
        if not 0 <= offset < len(drawn):
            return Strip.blank(width, style)
        strip = drawn[offset]
        if strip is None:
            strip = lines[offset].crop(0, width).extend_cell_length(width).apply_style(style)
            drawn[offset] = strip
        return strip


class DayRow(Row):
    component = "message-log--day"

    def __init__(self, day: str) -> None:
        super().__init__(Text(f"── {day} ──", justify="center", overflow="fold"))
        self.day = day

    @property
    def leading_blank(self) -> int:
        return 1


class NoticeRow(Row):
    component = "message-log--notice"

    def __init__(self, text: str, ts: datetime | None = None) -> None:
        super().__init__(notice_text(text, ts))


class MessageRow(Row):
    component = "message-log--message"

    def __init__(self, entry: Entry) -> None:
        super().__init__(render_entry(entry))
        self.entry = entry

    def style_names(self) -> tuple[str, ...]:
        if self.entry.mine:
            return (self.component, "message-log--mine")
        if self.entry.kind == "undecryptable":
            return (self.component, "message-log--undecryptable")
        return (self.component,)

    def show(self, entry: Entry) -> None:
        self.entry = entry
        self.text = render_entry(entry)
        self.invalidate()


class LogRows:
    """The rows of one room in display order, indexed by seq and msg_id, laid out at a width."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.by_seq: dict[int, MessageRow] = {}
        self.by_msg_id: dict[str, MessageRow] = {}
        self.width = 0
        self._starts: list[int] = []
        """First line of each row at ``width``; stale when ``_dirty``."""
        self._total = 0
        self._dirty = True
        self._drawn: OrderedDict[int, Row] = OrderedDict()
        """Rows whose lines are kept, least recently drawn first (by id: held here, so
        an id is never reused while in it)."""

    def __len__(self) -> int:
        return len(self.rows)

    # --- queries -----------------------------------------------------------------------------
    def entries(self) -> Iterator[Entry]:
        for row in self.rows:
            if isinstance(row, MessageRow):
                yield row.entry

    def find(self, *, seq: int | None = None, msg_id: str = "") -> MessageRow | None:
        if seq is not None and seq in self.by_seq:
            return self.by_seq[seq]
        if msg_id:
            return self.by_msg_id.get(msg_id)
        return None

    def last_day(self) -> str | None:
        for row in reversed(self.rows):
            if isinstance(row, DayRow):
                return row.day
        return None

    # --- layout ------------------------------------------------------------------------------
    def layout(self, width: int, console: Console) -> int:
        """Lay the rows out at ``width`` (heights cached per row); the total number of lines."""
        if width != self.width:
            self.width, self._dirty = width, True
        if self._dirty and width > 0:
            starts, line = [], 0
            for row in self.rows:
                starts.append(line)
                line += row.height(width, console)
            self._starts, self._total, self._dirty = starts, line, False
        return self._total if width > 0 else 0

    def laid_out(self, width: int) -> bool:
        """``span`` and ``at`` are current for ``width``."""
        return width > 0 and width == self.width and not self._dirty

    def at(self, line: int) -> tuple[int, int] | None:
        """(row index, line within that row) of a laid-out line, or None past the end."""
        if self._dirty or not 0 <= line < self._total:
            return None
        index = bisect_right(self._starts, line) - 1
        return index, line - self._starts[index]

    def span(self, index: int) -> tuple[int, int]:
        """(first line, number of lines) of a laid-out row."""
        start = self._starts[index]
        end = self._starts[index + 1] if index + 1 < len(self._starts) else self._total
        return start, end - start

    def drawn(self, row: Row) -> None:
        """``row`` was just drawn: keep its lines, and forget those of the least recently
        drawn rows past ``DRAWN_ROWS``."""
        key = id(row)
        if key in self._drawn:
            self._drawn.move_to_end(key)
            return
        self._drawn[key] = row
        if len(self._drawn) > DRAWN_ROWS:
            _key, old = self._drawn.popitem(last=False)
            old.forget_lines()

    # --- changes (each leaves the layout to redo) ----------------------------------------------
    def clear(self) -> None:
        self.rows.clear()
        self._drawn.clear()
        self.by_seq.clear()
        self.by_msg_id.clear()
        self._dirty = True

    def index(self, row: MessageRow) -> None:
        entry = row.entry
        if entry.seq is not None:
            self.by_seq[entry.seq] = row
        if entry.msg_id:
            self.by_msg_id[entry.msg_id] = row

    def append(self, rows: Iterable[Row]) -> None:
        self.rows.extend(rows)
        self._dirty = True

    def prepend(self, rows: list[Row]) -> None:
        """Put older rows above; the day separator they end with is said once."""
        first = self.rows[0] if self.rows else None
        days = [row.day for row in rows if isinstance(row, DayRow)]
        if isinstance(first, DayRow) and days and days[-1] == first.day:
            del self.rows[0]
        self.rows[:0] = rows
        self._dirty = True

    def changed(self) -> None:
        """A row's text changed (its height may have)."""
        self._dirty = True

    def drop_front(self, count: int) -> list[Row]:
        """Drop the ``count`` oldest rows; a message left on top gets its day separator back."""
        dropped, self.rows = self.rows[:count], self.rows[count:]
        for row in dropped:
            self._drawn.pop(id(row), None)
            if isinstance(row, MessageRow):
                if row.entry.seq is not None and self.by_seq.get(row.entry.seq) is row:
                    del self.by_seq[row.entry.seq]
                if self.by_msg_id.get(row.entry.msg_id) is row:
                    del self.by_msg_id[row.entry.msg_id]
        first = self.rows[0] if self.rows else None
        if isinstance(first, MessageRow):
            self.rows.insert(0, DayRow(first.entry.day))
        self._dirty = True
        return dropped
