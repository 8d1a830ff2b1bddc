"""Sending from the UI: each typed message becomes a ``Draft`` with its ``msg_id`` made up
front, so the screen can follow it (sending → accepted → delivered) and match the server's
copy when it comes back.

Once sealed, a message sits in the client core's persisted outbox and is resent after any
reconnect. Sealing itself needs the server (member devices, one-time keys), so a message typed
while offline waits here (``queued``) and is sealed when the connection is back; one whose
room holds a changed key waits (``held``) until the change is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.protocol.errors import ErrorCode
from tui.client.client import ChatClient, new_msg_id
from tui.client.errors import ApiError, ClientClosed, ConnectionLost, NotLoggedIn, ServerUnreachable
from tui.client.store import Outgoing
from tui.crypto import CryptoError, SendingHeld

log = logging.getLogger("sealchat.tui")

OFFLINE = (ServerUnreachable, ConnectionLost, ClientClosed, TimeoutError, OSError)


@dataclass
class Draft:
    room: str
    msg_id: str
    content: dict[str, Any]
    ttl: int | None = None
    state: str = "sending"
    """``sending``, ``queued`` (offline, not sealed yet), ``outbox`` (sealed, waiting for the
    server), ``held`` (a key changed), ``accepted``, ``failed``."""
    problem: str = ""
    held_users: list[str] = field(default_factory=list)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def text(self) -> str:
        body = self.content.get("body")
        return body if isinstance(body, str) else ""


class Sender:
    def __init__(self, client: ChatClient, on_change: Callable[[Draft], None]) -> None:
        self.client = client
        self.on_change = on_change
        self.drafts: dict[str, Draft] = {}
        """Messages not yet accepted by the server, by msg_id."""
        self._tasks: set[asyncio.Task[None]] = set()

    def waiting(self) -> int:
        """Typed but not yet handed to the core's outbox (shown in the status line)."""
        return sum(1 for d in self.drafts.values() if d.state in ("queued", "held"))

    def of_room(self, room: str) -> list[Draft]:
        return [d for d in self.drafts.values() if d.room == room]

    def submit(self, room: str, content: dict[str, Any], ttl: int | None = None) -> Draft:
        draft = Draft(room, new_msg_id(), content, ttl)
        self.drafts[draft.msg_id] = draft
        self._start(draft)
        return draft

    def retry(self, *, held: bool = False) -> None:
        """Try the queued drafts again (back online), and the held ones after an ack."""
        for draft in list(self.drafts.values()):
            if draft.state == "queued" or (held and draft.state == "held"):
                self._start(draft)

    def _start(self, draft: Draft) -> None:
        task = asyncio.create_task(self._run(draft), name=f"sealchat-send-{draft.msg_id[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set(self, draft: Draft, state: str, problem: str = "") -> None:
        draft.state = state
        draft.problem = problem
        if state in ("accepted", "failed"):
            self.drafts.pop(draft.msg_id, None)
        self.on_change(draft)

    async def _run(self, draft: Draft) -> None:
        self._set(draft, "sending")
        cipher = self.client.cipher
        if cipher is None:
            self._set(draft, "failed", "this profile has no device keys: log in again")
            return
        content = dict(draft.content)
        if draft.ttl is not None:
            content["expires_in"] = draft.ttl
        try:
            ciphertext = await cipher.seal(draft.room, content)
        except SendingHeld as exc:
            draft.held_users = list(exc.users)
            self._set(draft, "held", f"waiting: {', '.join(exc.users)} changed their key")
            return
        except OFFLINE:
            self._set(draft, "queued", "waiting for the server")
            return
        except NotLoggedIn as exc:
            self._set(draft, "queued", exc.message)
            return
        except ApiError as exc:
            if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL, ErrorCode.RATE_LIMITED):
                self._set(draft, "queued", "the server is busy; retrying when it is back")
            else:
                self._set(draft, "failed", exc.message)
            return
        except CryptoError as exc:
            self._set(draft, "failed", str(exc))
            return
        item = Outgoing(draft.msg_id, draft.room, ciphertext, "m", draft.ttl)
        if self.client.state != "online":
            # Sealed and about to be kept in the core's persisted outbox: it goes out by itself
            # after the reconnect (never sealed twice).
            self._set(draft, "outbox", "in the outbox until the server is back")
        try:
            await self.client.send_sealed(item)
        except ApiError as exc:
            self._set(draft, "failed", exc.message)
            return
        self._set(draft, "accepted")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: S112 - closing: nothing to report
                continue
