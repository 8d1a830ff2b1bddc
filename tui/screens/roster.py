"""What the side lists show, as plain data: rooms with unread counts and previews sorted by
activity, friends with presence and pending requests. Fed by REST snapshots and client events,
drawn by ``tui.widgets.lists``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class RoomInfo:
    id: str
    kind: str = "group"
    name: str = ""
    topic: str = ""
    role: str = "member"
    member_count: int = 0
    read_seq: int = 0
    latest_seq: int = 0
    last_text: str = ""
    last_sender: str = ""
    last_ts: datetime | None = None
    peer: str = ""
    """The other member of a 1:1 room."""
    invited_by: str = ""
    """Set for an invitation not yet accepted."""
    members: list[str] = field(default_factory=list)

    @property
    def unread(self) -> int:
        return 0 if self.invited_by else max(0, self.latest_seq - self.read_seq)

    @property
    def title(self) -> str:
        if self.kind == "direct":
            return f"@{self.peer}" if self.peer else "1:1"
        return f"#{self.name}" if self.name else self.id

    @property
    def sort_key(self) -> tuple[int, float, str]:
        """Invitations first, then the most recently active."""
        ts = self.last_ts.timestamp() if self.last_ts else 0.0
        return (0 if self.invited_by else 1, -ts, self.title)


@dataclass
class Roster:
    me: str = ""
    rooms: dict[str, RoomInfo] = field(default_factory=dict)
    friends: list[str] = field(default_factory=list)
    incoming: list[str] = field(default_factory=list)
    outgoing: list[str] = field(default_factory=list)
    online: dict[str, bool] = field(default_factory=dict)

    def sorted_rooms(self) -> list[RoomInfo]:
        return sorted(self.rooms.values(), key=lambda r: r.sort_key)

    def set_rooms(self, listed: list[dict[str, Any]], invites: list[dict[str, Any]]) -> None:
        """A fresh ``GET /chat/rooms`` + ``GET /chat/invites``: keep what events taught us."""
        seen: set[str] = set()
        for row in listed:
            rid = str(row["id"])
            seen.add(rid)
            info = self.rooms.get(rid) or RoomInfo(rid)
            info.kind = str(row.get("kind", "group"))
            info.name = str(row.get("name") or "")
            info.topic = str(row.get("topic") or "")
            info.role = str(row.get("role", "member"))
            info.member_count = int(row.get("member_count", 0))
            info.read_seq = max(info.read_seq, int(row.get("read_seq") or 0))
            info.invited_by = ""
            self.rooms[rid] = info
        for inv in invites:
            rid = str(inv["room"])
            if rid in seen:
                continue
            seen.add(rid)
            info = self.rooms.get(rid) or RoomInfo(rid)
            info.name = str(inv.get("name") or "")
            info.invited_by = str(inv.get("by", "?"))
            self.rooms[rid] = info
        for rid in list(self.rooms):
            if rid not in seen:
                del self.rooms[rid]

    def set_friends(self, data: dict[str, Any]) -> None:
        self.friends = sorted(str(f["id"]) for f in data.get("friends", []))
        self.incoming = sorted(str(f["id"]) for f in data.get("incoming", []))
        self.outgoing = sorted(str(f["id"]) for f in data.get("outgoing", []))

    def saw_message(self, room: str, seq: int, sender: str, text: str, ts: datetime) -> bool:
        """A message arrived; False when the room is not known (re-read the lists)."""
        info = self.rooms.get(room)
        if info is None:
            return False
        if seq >= info.latest_seq:
            info.latest_seq = seq
            info.last_text = text
            info.last_sender = sender
            info.last_ts = ts
        if sender == self.me:
            info.read_seq = max(info.read_seq, seq)
        return True

    def direct_with(self, user: str) -> RoomInfo | None:
        for info in self.rooms.values():
            if info.kind == "direct" and info.peer == user:
                return info
        return None
