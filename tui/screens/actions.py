"""Every action of the main screen (key bindings and the command palette call these): each
asks through a dialog, then calls the client core in a worker, and reports the outcome in
words that say what to do next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work

from tui.client.errors import ApiError, ClientError
from tui.client.files import download_file, safe_name, upload_file
from tui.crypto import CryptoError
from tui.dialogs.forms import AskText, Confirm, FriendRequest, PickUsers
from tui.dialogs.settings import DevicesDialog, SettingsDialog
from tui.dialogs.verify import VerifyDialog
from tui.widgets.chat_view import ChatView
from tui.widgets.entries import Entry

if TYPE_CHECKING:
    from textual.screen import Screen

    from tui.app import SealchatApp
    from tui.screens.roster import RoomInfo, Roster

    Base = Screen[None]
else:
    Base = object

DELETE_WARNING = (
    "Deleting {title} removes it for every member and everyone invited, together with its "
    "whole message history on the server. This cannot be undone. Members keep only what their "
    "own devices already stored."
)


def problem(exc: BaseException) -> str:
    if isinstance(exc, ApiError | ClientError):
        return exc.message
    if isinstance(exc, CryptoError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class MainActions(Base):
    """Mixed into ``MainScreen``, which provides the lists and the open room."""

    if TYPE_CHECKING:
        roster: Roster
        open_room: str | None
        chat: ChatView

        @property
        def sapp(self) -> SealchatApp: ...
        def reload(self) -> Any: ...
        async def load_lists(self) -> None: ...
        def show_room(self, info: RoomInfo) -> None: ...
        def close_room(self) -> None: ...

    # --- helpers -----------------------------------------------------------------------------
    def current(self, what: str) -> RoomInfo | None:
        info = self.roster.rooms.get(self.open_room or "")
        if info is None or info.invited_by:
            self.notify(
                f"Open a room first (choose one on the left) to {what}.", severity="warning"
            )
            return None
        return info

    async def attempt(self, what: str, call: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run one client call: ``(True, result)``, or ``(False, None)`` after saying what
        failed and why."""
        try:
            return True, await call()
        except (ClientError, CryptoError, OSError) as exc:
            self.notify(f"Could not {what}: {problem(exc)}", severity="error", timeout=8)
            return False, None

    # --- friends -----------------------------------------------------------------------------
    def action_add_friend(self) -> None:
        self.add_friend()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def add_friend(self) -> None:
        session = self.sapp.session
        assert session is not None
        outcome: dict[str, str] = {}

        async def ask(user: str) -> str | None:
            try:
                answer = await session.client.api.request_friend(user)
            except (ClientError, OSError) as exc:
                return f"{problem(exc)} Check the id, or press Escape."
            outcome[user] = str(answer.get("status", "pending"))
            return None

        user = await self.app.push_screen_wait(
            AskText(
                "Add a friend",
                "Their user id",
                placeholder="e.g. bob",
                ok="Ask",
                hint="They see your request and can accept or decline it.",
                check=ask,
            )
        )
        if user:
            self.notify(
                f"You and {user} are friends now."
                if outcome.get(user) == "friends"
                else f"Asked {user}; they will see your request."
            )
            self.reload()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def answer_request(self, user: str) -> None:
        answer = await self.app.push_screen_wait(FriendRequest(user))
        session = self.sapp.session
        assert session is not None
        api = session.client.api
        if answer == "accept":
            if (await self.attempt("accept", lambda: api.accept_friend(user)))[0]:
                self.notify(f"You and {user} are friends now: choose them to chat.")
        elif answer == "decline":
            await self.attempt("decline", lambda: api.decline_friend(user))
        self.reload()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def cancel_request(self, user: str) -> None:
        if await self.app.push_screen_wait(
            Confirm("Friend request", f"Take back your request to {user}?", ok="Take back")
        ):
            session = self.sapp.session
            assert session is not None
            await self.attempt("cancel", lambda: session.client.api.cancel_request(user))
            self.reload()

    @work(exclusive=True, group="open", exit_on_error=False)
    async def open_direct(self, user: str) -> None:
        info = self.roster.direct_with(user)
        if info is None:
            session = self.sapp.session
            assert session is not None
            ok, room = await self.attempt(
                f"open a chat with {user}", lambda: session.client.rooms.direct(user)
            )
            if not ok:
                return
            await self.load_lists()
            info = self.roster.rooms.get(str(room["id"]))
        if info is not None:
            self.show_room(info)

    # --- rooms -------------------------------------------------------------------------------
    def action_new_room(self) -> None:
        self.new_room()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def new_room(self) -> None:
        answer = await self.app.push_screen_wait(
            PickUsers(
                "New room",
                "Invite friends (Space to choose):",
                self.roster.friends,
                ok="Create",
                ask_name=True,
                empty="Add friends later with Ctrl+T.",
            )
        )
        if not answer:
            return
        name, *invitees = answer
        session = self.sapp.session
        assert session is not None
        actions = session.client.rooms
        ok, room = await self.attempt(f"create {name}", lambda: actions.create(name))
        if not ok:
            return
        rid = str(room["id"])
        for user in invitees:
            await self.attempt(f"invite {user}", partial(actions.invite, rid, user))
        await self.load_lists()
        info = self.roster.rooms.get(rid)
        if info is not None:
            self.show_room(info)

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def answer_invite(self, info: RoomInfo) -> None:
        join = await self.app.push_screen_wait(
            Confirm(
                "Invitation", f"{info.invited_by} invited you to {info.title}. Join it?", ok="Join"
            )
        )
        session = self.sapp.session
        assert session is not None
        rid = info.id
        if join:
            ok, _ = await self.attempt("join", lambda: session.client.rooms.join(rid, session.user))
            await self.load_lists()
            fresh = self.roster.rooms.get(rid)
            if ok and fresh is not None:
                self.show_room(fresh)
        elif join is False:
            await self.attempt("decline", lambda: session.client.api.decline_invite(rid))
            self.reload()

    def action_invite(self) -> None:
        self.invite()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def invite(self) -> None:
        info = self.current("invite someone")
        if info is None:
            return
        if info.kind == "direct":
            self.notify("A 1:1 room stays between two people: make a group (Ctrl+N).")
            return
        members = set(self.chat.members)
        choices = [f for f in self.roster.friends if f not in members]
        users = await self.app.push_screen_wait(
            PickUsers(
                f"Invite to {info.title}",
                "Friends to invite:",
                choices,
                ok="Invite",
                empty="All your friends are in already (add friends with Ctrl+F).",
            )
        )
        session = self.sapp.session
        assert session is not None
        for user in users or []:
            ok, _ = await self.attempt(
                f"invite {user}", partial(session.client.rooms.invite, info.id, user)
            )
            if ok:
                self.notify(f"Invited {user}.")

    def action_kick(self) -> None:
        self.kick()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def kick(self) -> None:
        info = self.current("remove a member")
        if info is None:
            return
        session = self.sapp.session
        assert session is not None
        others = [m for m in self.chat.members if m != session.user]
        users = await self.app.push_screen_wait(
            PickUsers(
                f"Remove from {info.title}",
                "Members to remove:",
                others,
                ok="Remove",
                empty="Nobody else is in this room.",
            )
        )
        for user in users or []:
            await self.attempt(f"remove {user}", partial(session.client.rooms.kick, info.id, user))

    def action_leave(self) -> None:
        self.leave()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def leave(self) -> None:
        info = self.current("leave it")
        if info is None:
            return
        text = (
            f"Leave {info.title}? You stop receiving its messages; someone must invite you "
            "to come back."
            if info.kind == "group"
            else f"Leave {info.title}? Choosing {info.peer} under Friends opens it again."
        )
        if not await self.app.push_screen_wait(Confirm("Leave room", text, ok="Leave")):
            return
        session = self.sapp.session
        assert session is not None
        if (await self.attempt("leave", lambda: session.client.rooms.leave(info.id)))[0]:
            self.close_room()
            self.reload()

    def action_delete_room(self) -> None:
        self.delete_room()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def delete_room(self) -> None:
        info = self.current("delete it")
        if info is None:
            return
        if info.kind == "direct":
            self.notify("A 1:1 room cannot be deleted; leave it instead (Ctrl+L).")
            return
        if not await self.app.push_screen_wait(
            Confirm(
                f"Delete {info.title}?",
                DELETE_WARNING.format(title=info.title),
                ok="Delete for everyone",
                danger=True,
            )
        ):
            return
        session = self.sapp.session
        assert session is not None
        if (await self.attempt("delete", lambda: session.client.rooms.delete(info.id)))[0]:
            self.close_room()
            self.reload()

    # --- security ----------------------------------------------------------------------------
    def action_verify(self) -> None:
        info = self.roster.rooms.get(self.open_room or "")
        if info is not None and info.kind == "direct" and info.peer:
            self.verify_user(info.peer)
            return
        self.pick_and_verify()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def pick_and_verify(self) -> None:
        session = self.sapp.session
        assert session is not None
        people = sorted(set(self.roster.friends) | set(self.chat.members))
        people = [p for p in people if p != session.user]
        chosen = await self.app.push_screen_wait(
            PickUsers(
                "Verify",
                "Whom to verify (choose one):",
                people,
                ok="Verify",
                empty="Add a friend first (Ctrl+F).",
            )
        )
        if chosen:
            self.verify_user(chosen[0])

    def verify_user(self, user: str) -> None:
        session = self.sapp.session
        if session is None or session.e2ee is None:
            self.notify("This profile has no device keys: log in again.", severity="error")
            return
        self.app.push_screen(VerifyDialog(user))

    def action_devices(self) -> None:
        self.devices()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def devices(self) -> None:
        session = self.sapp.session
        assert session is not None
        ok, listed = await self.attempt("list your devices", session.client.api.devices)
        if ok:
            await self.app.push_screen_wait(DevicesDialog(listed, session.client.device_id))

    # --- settings and files ------------------------------------------------------------------
    def action_settings(self) -> None:
        self.settings()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def settings(self) -> None:
        info = self.roster.rooms.get(self.open_room or "")
        prefs = self.sapp.prefs_for(info.id if info else None)
        chosen = await self.app.push_screen_wait(
            SettingsDialog(prefs, info.title if info and not info.invited_by else None)
        )
        if chosen is not None:
            self.sapp.save_prefs(chosen, info.id if info else None)
            self.chat.refresh_header()

    def action_send_file(self) -> None:
        self.send_file()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def send_file(self) -> None:
        info = self.current("send a file")
        if info is None:
            return
        raw = await self.app.push_screen_wait(
            AskText(
                "Send a file",
                "Path of the file",
                placeholder="~/notes.pdf",
                ok="Send",
                hint="It is encrypted here; the server stores only ciphertext.",
            )
        )
        if not raw:
            return
        path = await asyncio.to_thread(Path(raw).expanduser)
        if not await asyncio.to_thread(path.is_file):
            self.notify(f"{path} is not a readable file: check the path.", severity="error")
            return
        session = self.sapp.session
        assert session is not None
        self.notify(f"Encrypting and uploading {path.name}…")
        ok, content = await self.attempt(
            f"upload {path.name}", lambda: upload_file(session.client.api, info.id, path)
        )
        if ok:
            self.sapp.send_content(info.id, content)

    @work(group="files", exit_on_error=False)
    async def save_attachment(self, entry: Entry) -> None:
        session = self.sapp.session
        assert session is not None
        folder = self.sapp.downloads
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / safe_name(entry.content)
        n = 1
        while dst.exists():
            dst = folder / f"{Path(safe_name(entry.content)).stem}-{n}{dst.suffix}"
            n += 1
        ok, saved = await self.attempt(
            f"save {safe_name(entry.content)}",
            lambda: download_file(session.client.api, entry.content, dst),
        )
        if ok:
            self.notify(f"Saved to {saved}")
