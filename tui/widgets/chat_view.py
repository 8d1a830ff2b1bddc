"""The open chat: header (name, member count), key-change banner, the log, who is typing,
and the composer. It shows what the client core reports; I/O runs in workers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from tui.client.events import (
    ClientEvent,
    IdentityWarning,
    MemberChanged,
    MessageShown,
    MessageUndecryptable,
    TypingChanged,
)
from tui.screens.roster import RoomInfo
from tui.screens.sender import Draft
from tui.widgets.composer import Composer
from tui.widgets.entries import Entry, entry_from_history, entry_of
from tui.widgets.message_log import MessageLog

if TYPE_CHECKING:
    from tui.app import SealchatApp

#: A typing indicator lasts this long without a fresh "typing" (the server sends one every 3 s).
TYPING_SHOWN = 6.0
PAGE = 50
ACTIONS = {
    "create": "created the room",
    "invite": "invited {user}",
    "join": "joined",
    "leave": "left",
    "kick": "removed {user}",
    "delete": "deleted the room",
    "role": "made {user} {role}",
}


def draft_entry(draft: Draft, me: str) -> Entry:
    return Entry(
        sender=me,
        ts=draft.ts,
        text=draft.text,
        msg_id=draft.msg_id,
        state=draft.state,
        problem=draft.problem,
        content=draft.content,
        mine=True,
    )


class ChatView(Vertical):
    @dataclass
    class ReadUpTo(Message):
        """The newest message of ``room`` is on screen: move the read marker."""

        room: str
        seq: int

    @dataclass
    class VerifyRequested(Message):
        users: list[str]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.room: RoomInfo | None = None
        self.members: list[str] = []
        self.held: list[str] = []
        self._typing: dict[str, float] = {}
        self._read_sent = 0
        # Kept, not queried on every batch of events.
        self.header = Static(id="chat-header")
        self.banner = Horizontal(id="key-banner")
        self.banner_text = Static(id="key-banner-text")
        self.log_widget = MessageLog(id="log")
        self.typing_line = Static(id="typing")
        self.composer = Composer(id="composer")

    @property
    def sapp(self) -> SealchatApp:
        return cast("SealchatApp", self.app)

    def compose(self) -> ComposeResult:
        yield self.header
        with self.banner:
            yield self.banner_text
            yield Button("Verify…", id="key-banner-verify", variant="warning")
        yield self.log_widget
        yield self.typing_line
        yield self.composer

    def on_mount(self) -> None:
        self.banner.display = False
        self.set_interval(1.0, self._expire_typing)

    # --- opening a room ----------------------------------------------------------------------
    def open(self, room: RoomInfo) -> None:
        self.room = room
        self.members = []
        self._typing.clear()
        self._read_sent = 0
        self.refresh_header()
        self.typing_line.update("")
        log = self.log_widget
        log.clear_log()
        session = self.sapp.session
        assert session is not None
        entries = self._cached(room.id, None)
        log.put(entries)
        log.put([draft_entry(d, session.user) for d in self.sapp.sender_drafts(room.id)])
        if len(entries) < PAGE:
            log.exhausted = False
        self.load_members(room.id)
        self.composer.focus()
        self.call_after_refresh(self.mark_read)

    def _cached(self, room: str, before: int | None) -> list[Entry]:
        """The decrypted history this device kept, plus what it could not decrypt yet."""
        session = self.sapp.session
        assert session is not None
        me = session.user
        rows = session.store.history(room, before=before, limit=PAGE)
        by_seq = {seq: entry_from_history(seq, row, me) for seq, row in rows}
        e2ee = session.e2ee
        if e2ee is not None:
            low = min(by_seq) if by_seq and len(rows) == PAGE else 0
            for und in e2ee.engine.undecryptable(room):
                if und.seq not in by_seq and und.seq > low and (before is None or und.seq < before):
                    by_seq[und.seq] = Entry(
                        sender=und.sender,
                        ts=by_seq[min(by_seq)].ts if by_seq else datetime.now(UTC),
                        seq=und.seq,
                        msg_id=und.msg_id,
                        kind="undecryptable",
                        problem=str(und),
                        mine=und.sender == me,
                    )
        return [by_seq[s] for s in sorted(by_seq)]

    @work(exclusive=True, group="members", exit_on_error=False)
    async def load_members(self, room: str) -> None:
        session = self.sapp.session
        assert session is not None
        data = await session.client.api.room(room)
        if self.room is None or self.room.id != room:
            return
        self.members = [str(m["id"]) for m in data.get("members", [])]
        self.room.member_count = int(data.get("member_count", len(self.members)))
        self.refresh_header()
        self.check_held()

    def refresh_header(self) -> None:
        room = self.room
        if room is None:
            return
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(room.title, style="bold")
        count = room.member_count or len(self.members)
        out.append(f"  ·  {count} member{'s' if count != 1 else ''}", style="dim")
        if room.kind == "group" and room.topic:
            out.append(f"  ·  {room.topic}", style="dim italic")
        ttl = self.sapp.room_ttl(room.id)
        if ttl:
            out.append(f"  ·  ⏱ {ttl}s", style="dim")
        self.header.update(out)

    def check_held(self) -> None:
        """Show the banner when a member's key changed and was not acknowledged yet."""
        session = self.sapp.session
        if session is None or session.e2ee is None or self.room is None:
            return
        held = [u for u in session.e2ee.engine.held_users() if u in self.members]
        self.held = held
        banner = self.banner
        banner.display = bool(held)
        if held:
            self.banner_text.update(
                Text(
                    f"⚠ The security key of {', '.join(held)} changed. Sending here is held "
                    "until you check it and acknowledge the change.",
                    style="bold",
                )
            )

    @on(Button.Pressed, "#key-banner-verify")
    def _verify_pressed(self) -> None:
        self.post_message(self.VerifyRequested(list(self.held)))

    # --- what arrives ------------------------------------------------------------------------
    def show_events(self, events: list[ClientEvent]) -> None:
        """Events of this room (in arrival order), already filtered by the screen."""
        session = self.sapp.session
        room = self.room
        if session is None or room is None:
            return
        log = self.log_widget
        batch: list[Entry] = []
        for ev in events:
            if isinstance(ev, MessageShown | MessageUndecryptable):
                entry = entry_of(ev, session.user)
                pending = log.entry(msg_id=ev.msg_id)
                if pending is not None and pending.seq is None:
                    entry = pending.delivered(entry)
                batch.append(entry)
                self._typing.pop(ev.sender, None)
            elif isinstance(ev, MemberChanged):
                if batch:
                    log.put(batch)
                    batch = []
                self._member_notice(ev)
            elif isinstance(ev, TypingChanged):
                if ev.user == session.user:
                    continue
                if ev.active:
                    self._typing[ev.user] = time.monotonic() + TYPING_SHOWN
                else:
                    self._typing.pop(ev.user, None)
            elif isinstance(ev, IdentityWarning):
                self.check_held()
        if batch:
            log.put(batch)
        self._show_typing()
        self.call_after_refresh(self.mark_read)

    def _member_notice(self, ev: MemberChanged) -> None:
        assert self.room is not None
        what = ACTIONS.get(ev.action, ev.action).format(user=ev.user or "", role="")
        plural = "" if ev.member_count == 1 else "s"
        text = f"{ev.actor} {what} · {ev.member_count} member{plural}"
        if ev.problem:
            text += f" · ⚠ {ev.problem}"
        self.log_widget.notice(text)
        self.room.member_count = ev.member_count
        if ev.user and ev.action in ("leave", "kick") and ev.user in self.members:
            self.members.remove(ev.user)
        elif ev.user and ev.action in ("join",) and ev.user not in self.members:
            self.members.append(ev.user)
        self.refresh_header()

    def show_draft(self, draft: Draft) -> None:
        session = self.sapp.session
        if session is None or self.room is None or draft.room != self.room.id:
            return
        shown = self.log_widget.entry(msg_id=draft.msg_id)
        if shown is not None and shown.state == "delivered":
            return
        if draft.state == "held":
            self.check_held()
        self.log_widget.put([draft_entry(draft, session.user)])

    def _show_typing(self) -> None:
        names = sorted(self._typing)
        label = self.typing_line
        if not names:
            label.update("")
        elif len(names) == 1:
            label.update(Text(f"{names[0]} is typing…", style="italic dim"))
        else:
            label.update(Text(f"{', '.join(names)} are typing…", style="italic dim"))

    def _expire_typing(self) -> None:
        now = time.monotonic()
        gone = [u for u, until in self._typing.items() if until < now]
        for user in gone:
            del self._typing[user]
        if gone:
            self._show_typing()

    def mark_read(self) -> None:
        log = self.log_widget
        if self.room is None or not log.following or not self.sapp.is_focused_app():
            return
        newest = log.newest_seq
        if newest > self._read_sent:
            self._read_sent = newest
            self.post_message(self.ReadUpTo(self.room.id, newest))

    # --- older history -----------------------------------------------------------------------
    @on(MessageLog.NeedOlder)
    def _need_older(self, event: MessageLog.NeedOlder) -> None:
        event.stop()
        if self.room is not None:
            self.load_older(self.room.id, event.before)

    @work(exclusive=True, group="older", exit_on_error=False)
    async def load_older(self, room: str, before: int) -> None:
        entries = self._cached(room, before)
        if not entries:
            entries = await self._older_from_server(room, before)
        if self.room is not None and self.room.id == room:
            self.log_widget.put_older(entries)

    async def _older_from_server(self, room: str, before: int) -> list[Entry]:
        """Messages older than this device's cache: fetched and opened (often undecryptable,
        since keys are shared only with the devices that were members then)."""
        session = self.sapp.session
        assert session is not None
        cipher = session.client.cipher
        if cipher is None:
            return []
        page = await session.client.history(room, before=before, limit=PAGE)
        out: list[Entry] = []
        for msg in page:
            for ev in await cipher.open(msg):
                if isinstance(ev, MessageShown | MessageUndecryptable):
                    out.append(entry_of(ev, session.user))
        return out

    # --- composing ---------------------------------------------------------------------------
    @on(Composer.Submitted)
    def _submitted(self, event: Composer.Submitted) -> None:
        event.stop()
        if self.room is None or self.room.invited_by:
            self.app.notify("Open a room first (accept the invitation to write in it).")
            return
        self.log_widget.anchor()
        self.sapp.send_text(self.room.id, event.text)

    @on(Composer.Typing)
    def _typing_changed(self, event: Composer.Typing) -> None:
        event.stop()
        if self.room is not None and not self.room.invited_by:
            self.sapp.send_typing(self.room.id, event.active)
