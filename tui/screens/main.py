"""The main screen: connection line, rooms and friends on the left, the open chat on the
right, the key bindings in the footer. Client events arrive in batches (``apply``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, cast
from urllib.parse import urlsplit

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static

from tui.client.events import (
    ClientEvent,
    ConnectionState,
    IdentityWarning,
    MemberChanged,
    MessageShown,
    MessageUndecryptable,
    PresenceChanged,
    ReadMoved,
    RoomNotice,
    SecurityAlert,
    VerificationUpdate,
)
from tui.client.files import is_file, safe_name
from tui.screens.actions import MainActions
from tui.screens.roster import RoomInfo, Roster
from tui.screens.sender import Draft
from tui.widgets.chat_view import ChatView
from tui.widgets.lists import FriendList, RoomList
from tui.widgets.message_log import MessageLog
from tui.widgets.status import ConnectionStatus

if TYPE_CHECKING:
    from tui.app import SealchatApp

log = logging.getLogger("sealchat.tui")

#: Longest delay before the side lists show what a message changed (unread, preview, order).
LIST_EVERY = 0.25

HELLO = (
    "Choose a room on the left (↑/↓ and Enter), or press Ctrl+N to make one.\n"
    "Add a friend with Ctrl+F; Ctrl+P lists every action."
)


class MainScreen(MainActions, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_room", "New room"),
        Binding("ctrl+f", "add_friend", "Add friend"),
        Binding("ctrl+t", "invite", "Invite"),
        Binding("ctrl+g", "verify", "Verify"),
        Binding("ctrl+o", "send_file", "Send file"),
        Binding("ctrl+s", "settings", "Settings"),
        Binding("ctrl+l", "leave", "Leave", show=False),
        Binding("ctrl+r", "focus_rooms", "Rooms", show=False),
        Binding("escape", "focus_rooms", "Rooms", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.roster = Roster()
        self.open_room: str | None = None
        self._lists_due = False
        # Kept, not queried: a query walks the whole DOM, and the log holds hundreds of items.
        self.status_line = ConnectionStatus(id="status")
        self.rooms_list = RoomList(id="rooms")
        self.friends_list = FriendList(id="friends")
        self.chat = ChatView(id="chat")
        self.hello = Static(HELLO, id="hello")

    @property
    def sapp(self) -> SealchatApp:
        return cast("SealchatApp", self.app)

    def compose(self) -> ComposeResult:
        yield self.status_line
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Label("Rooms", classes="section")
                yield self.rooms_list
                yield Label("Friends", classes="section")
                yield self.friends_list
            with Vertical(id="main"):
                yield self.hello
                yield self.chat
        yield Footer()

    def on_mount(self) -> None:
        session = self.sapp.session
        assert session is not None
        self.roster.me = session.user
        status = self.status_line
        status.who = f"{session.user} @ {urlsplit(session.server).hostname or session.server}"
        self.chat.display = False
        self.rooms_list.focus()
        session.client.connect()
        self.reload()

    # --- lists -------------------------------------------------------------------------------
    @work(exclusive=True, group="reload", exit_on_error=False)
    async def reload(self) -> None:
        """Re-read rooms, invitations and friends (after connecting, and when they change)."""
        await self.load_lists()

    async def load_lists(self) -> None:
        session = self.sapp.session
        assert session is not None
        api = session.client.api
        listed = await api.rooms()
        invites = await api.invites()
        friends = await api.friends()
        self.roster.set_rooms(listed, invites)
        self.roster.set_friends(friends)
        store = session.store
        for info in self.roster.rooms.values():
            if info.kind == "direct" and not info.peer:
                members = (await api.room(info.id)).get("members", [])
                others = [str(m["id"]) for m in members if m["id"] != session.user]
                info.peer = others[0] if others else ""
            info.latest_seq = max(info.latest_seq, store.last_seq(info.id))
            if info.last_ts is None:
                rows = store.history(info.id, limit=1)
                if rows:
                    seq, row = rows[-1]
                    self._preview(info, seq, row)
        self.show_lists()

    def _preview(self, info: RoomInfo, seq: int, row: dict[str, object]) -> None:
        from datetime import datetime

        content = row.get("content")
        text = ""
        if isinstance(content, dict):
            text = safe_name(content) if is_file(content) else str(content.get("body") or "")
        try:
            ts = datetime.fromisoformat(str(row.get("ts")))
        except ValueError:
            return
        self.roster.saw_message(info.id, seq, str(row.get("sender", "")), text, ts)

    def show_lists(self) -> None:
        self.rooms_list.show(self.roster, self.open_room)
        self.friends_list.show(self.roster)
        self._count_outbox()

    def lists_soon(self) -> None:
        """Redraw the lists within ``LIST_EVERY`` seconds: a burst of messages redraws them
        a few times, not once per message."""
        if not self._lists_due:
            self._lists_due = True
            self.set_timer(LIST_EVERY, self._lists_now)

    def _lists_now(self) -> None:
        self._lists_due = False
        self.show_lists()

    def _count_outbox(self) -> None:
        session, sender = self.sapp.session, self.sapp.sender
        if session is not None and sender is not None:
            status = self.status_line
            status.outbox = len(session.client.outbox) + sender.waiting()

    @on(OptionList.OptionSelected, "#rooms")
    def _room_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id or ""
        if oid.startswith("room:"):
            self.choose_room(oid.removeprefix("room:"))

    @on(OptionList.OptionSelected, "#friends")
    def _friend_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        kind, _, user = (event.option.id or "").partition(":")
        if kind == "incoming":
            self.answer_request(user)
        elif kind == "friend":
            self.open_direct(user)
        elif kind == "outgoing":
            self.cancel_request(user)

    def choose_room(self, rid: str) -> None:
        info = self.roster.rooms.get(rid)
        if info is None:
            return
        if info.invited_by:
            self.answer_invite(info)
            return
        self.show_room(info)

    def show_room(self, info: RoomInfo) -> None:
        self.open_room = info.id
        self.hello.display = False
        chat = self.chat
        chat.display = True
        chat.open(info)
        self.show_lists()

    def close_room(self) -> None:
        self.open_room = None
        self.chat.display = False
        self.chat.room = None
        self.hello.display = True

    def action_focus_rooms(self) -> None:
        self.rooms_list.focus()

    # --- events ------------------------------------------------------------------------------
    def apply(self, events: list[ClientEvent]) -> None:
        """A batch of client events, in the order the core emitted them."""
        session = self.sapp.session
        if session is None or not self.chat.is_attached:
            return  # closing: the widgets are gone
        for_chat: list[ClientEvent] = []
        reload = False
        lists_changed = False
        for ev in events:
            room = getattr(ev, "room", None)
            if isinstance(ev, ConnectionState):
                self._connection(ev)
                if ev.state == "online":
                    # The server follows the auth result with a presence frame for every
                    # friend online now: what we knew from before the (re)connect is stale.
                    self.roster.online.clear()
                    reload = True
                continue
            if isinstance(ev, MessageShown | MessageUndecryptable):
                text = (
                    "🔒 encrypted message"
                    if isinstance(ev, MessageUndecryptable)
                    else (safe_name(ev.content) if is_file(ev.content) else ev.text)
                )
                if not self.roster.saw_message(ev.room, ev.seq, ev.sender, text, ev.ts):
                    reload = True
                lists_changed = True
                if ev.room != self.open_room and ev.sender != session.user:
                    self._alert_new(ev)
            elif isinstance(ev, MemberChanged):
                info = self.roster.rooms.get(ev.room)
                if info is not None:
                    info.member_count = ev.member_count
                if ev.user == session.user and ev.action in ("leave", "kick", "delete"):
                    reload = True
                    if ev.room == self.open_room and ev.action != "leave":
                        self.notify(f"You were removed from {info.title if info else ev.room}.")
            elif isinstance(ev, RoomNotice):
                reload = True
                self._room_notice(ev)
            elif isinstance(ev, PresenceChanged):
                self.roster.online[ev.user] = ev.online
                lists_changed = True
            elif isinstance(ev, ReadMoved):
                info = self.roster.rooms.get(ev.room)
                if info is not None and ev.user == session.user:
                    info.read_seq = max(info.read_seq, ev.seq)
                    lists_changed = True
            elif isinstance(ev, IdentityWarning):
                self.notify(
                    f"⚠ {ev.detail}. Sending to {ev.user} is held: Ctrl+G to verify.",
                    severity="warning",
                    timeout=10,
                )
                for_chat.append(ev)
            elif isinstance(ev, SecurityAlert):
                self.notify(f"Security: {ev.reason}", severity="error", timeout=15)
            elif isinstance(ev, VerificationUpdate):
                self.sapp.verification_update(ev.sas)
            if room is not None and room == self.open_room:
                for_chat.append(ev)
        if for_chat:
            self.chat.show_events(for_chat)
        if reload:
            self.reload()
        elif lists_changed:
            self.lists_soon()

    def _connection(self, ev: ConnectionState) -> None:
        waiting = self.sapp.sender.waiting() if self.sapp.sender else 0
        self.status_line.set_state(ev.state, ev.outbox + waiting, ev.detail, ev.retry_in)
        if ev.state == "online" and self.sapp.sender is not None:
            self.sapp.sender.retry()
        if ev.state == "logged_out":
            self.notify(
                f"{ev.detail} Quit (Ctrl+Q) and start sealchat again to log in.",
                severity="error",
                timeout=30,
            )

    def _alert_new(self, ev: MessageShown | MessageUndecryptable) -> None:
        info = self.roster.rooms.get(ev.room)
        if info is None or not self.sapp.prefs.bell:
            return
        self.app.bell()

    def _room_notice(self, ev: RoomNotice) -> None:
        data = ev.data
        if ev.kind == "room_invite":
            self.notify(f"{data.get('by')} invited you to {data.get('name') or 'a room'}.")
        elif ev.kind == "room_deleted":
            if data.get("room") == self.open_room:
                self.close_room()
            self.notify(f"A room was deleted by {data.get('by') or 'its owner'}.")
        elif ev.kind == "friend_event" and data.get("to") == self.roster.me:
            who, action = data.get("from"), data.get("action")
            if action == "request":
                self.notify(f"{who} wants to be friends: choose them under Friends.")
            elif action == "accept":
                self.notify(f"{who} accepted: you are friends now.")

    def draft_changed(self, draft: Draft) -> None:
        self.chat.show_draft(draft)
        self._count_outbox()
        if draft.state == "failed":
            self.notify(f"Not sent: {draft.problem}", severity="error")

    @on(ChatView.ReadUpTo)
    def _read(self, event: ChatView.ReadUpTo) -> None:
        info = self.roster.rooms.get(event.room)
        if info is not None and event.seq > info.read_seq:
            info.read_seq = event.seq
            self.show_lists()
            self.sapp.send_read(event.room, event.seq)

    @on(ChatView.VerifyRequested)
    def _verify_users(self, event: ChatView.VerifyRequested) -> None:
        if event.users:
            self.verify_user(event.users[0])

    @on(MessageLog.SaveRequested)
    def _save(self, event: MessageLog.SaveRequested) -> None:
        self.save_attachment(event.entry)
