"""The side lists: rooms (unread counts, last message, invitations) and friends (presence,
pending requests). Each option's id says what choosing it does: ``room:ID``, ``friend:USER``,
``incoming:USER``, ``outgoing:USER``."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.screens.roster import RoomInfo, Roster
from tui.widgets.entries import colour_of

#: Characters of the last message shown under a room's name (one line of the sidebar).
PREVIEW = 25


def _room_prompt(info: RoomInfo, me: str, *, is_open: bool) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    if info.invited_by:
        out.append("✉ ", style="yellow")
        out.append(info.title, style="bold")
        out.append(f"\n  invited by {info.invited_by}", style="italic yellow")
        return out
    out.append("▸ " if is_open else "  ")
    out.append(info.title, style="bold" if info.unread else "")
    if info.unread:
        out.append(f" ({info.unread})", style="bold cyan")
    if info.last_text or info.last_sender:
        preview = info.last_text.replace("\n", " ") or "…"
        who = "you" if info.last_sender and info.last_sender == me else info.last_sender
        line = f"{who}: {preview}" if who else preview
        if len(line) > PREVIEW:
            line = line[: PREVIEW - 1] + "…"
        out.append(f"\n  {line}", style="dim")
    else:
        out.append("\n  no messages yet", style="dim italic")
    return out


def _highlight_in(self: OptionList, options: list[Option], keep: str | None) -> None:
    """Keep the highlight on the same item across refreshes (the first one otherwise)."""
    for i, opt in enumerate(options):
        if opt.id == keep:
            self.highlighted = i
            return
    if options and not options[0].disabled:
        self.highlighted = 0


class RoomList(OptionList):
    """Rooms and invitations, most recently active first."""

    _highlight = _highlight_in

    def show(self, roster: Roster, open_room: str | None) -> None:
        keep = self.highlighted_option.id if self.highlighted_option else None
        options = []
        for info in roster.sorted_rooms():
            options.append(
                Option(
                    _room_prompt(info, roster.me, is_open=info.id == open_room),
                    id=f"room:{info.id}",
                )
            )
        self.set_options(options)
        if not options:
            self.set_options(
                [
                    Option(
                        Text("no rooms yet: Ctrl+N makes one", style="dim"),
                        id="hint:rooms",
                        disabled=True,
                    )
                ]
            )
            return
        self._highlight(options, keep)


class FriendList(OptionList):
    """Friends with presence, requests to answer, requests waiting for an answer."""

    _highlight = _highlight_in

    def show(self, roster: Roster) -> None:
        keep = self.highlighted_option.id if self.highlighted_option else None
        options: list[Option] = []
        for user in roster.incoming:
            options.append(
                Option(
                    Text.assemble(
                        ("? ", "yellow"), (user, "bold"), (" wants to be friends", "italic yellow")
                    ),
                    id=f"incoming:{user}",
                )
            )
        for user in roster.friends:
            online = roster.online.get(user)
            dot = ("● ", "green") if online else ("○ ", "dim")
            state = " online" if online else ""
            options.append(
                Option(
                    Text.assemble(dot, (user, f"bold {colour_of(user)}"), (state, "dim")),
                    id=f"friend:{user}",
                )
            )
        for user in roster.outgoing:
            options.append(
                Option(
                    Text.assemble(("… ", "dim"), (user, ""), (" (asked)", "dim italic")),
                    id=f"outgoing:{user}",
                )
            )
        if not options:
            options.append(
                Option(
                    Text("no friends yet: Ctrl+F adds one", style="dim"),
                    id="hint:friends",
                    disabled=True,
                )
            )
        self.set_options(options)
        self._highlight(options, keep)
