"""Replay a room's membership log and admit only members that validly signed entries justify.

The server writes the log, so it could add anyone; it cannot sign as a member's device. An entry
without a signature (yet) is *pending*, one with a bad signature or breaking the room's rules is
*rejected*; neither adds anyone. Removals always take effect: a server can always refuse service,
and honouring a removal never leaks a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.protocol.signing import membership_payload
from tui.crypto.trust import signature_ok
from tui.crypto.types import Membership

ADMIN, MEMBER = "admin", "member"
KeyLookup = Callable[[str, str], list[str]]
"""(user, device) → every Ed25519 key that device has had (empty when unknown)."""


def entry_payload(room: str, entry: dict[str, Any]) -> bytes:
    return membership_payload(
        room,
        int(entry["seq"]),
        str(entry["action"]),
        str(entry["actor"]),
        entry.get("target"),
        entry.get("role"),
        str(entry.get("device_id") or ""),
    )


def _signature_state(room: str, entry: dict[str, Any], keys: KeyLookup) -> str:
    """``valid``, ``pending`` (not signed yet) or a rejection reason."""
    device, signature = entry.get("device_id"), entry.get("signature")
    if not device or not signature:
        return "pending"
    candidates = keys(str(entry["actor"]), str(device))
    if not candidates:
        return f"signed by an unknown device {entry['actor']}/{device}"
    payload = entry_payload(room, entry)
    if any(signature_ok(key, payload, str(signature)) for key in candidates):
        return "valid"
    return "bad signature"


class _Replay:
    def __init__(self, room: str, kind: str) -> None:
        self.room, self.kind = room, kind
        self.members: dict[str, str] = {}
        self.invited: set[str] = set()
        self.creator: str | None = None
        self.pair: set[str] = set()
        self.deleted = False
        self.removal_just_left_no_admin = False

    def is_owner(self, user: str) -> bool:
        if self.members.get(user) != ADMIN:
            return False
        return self.creator in (user, None) or self.creator not in self.members

    def remove(self, user: str | None) -> None:
        if user is not None:
            self.members.pop(user, None)
            self.invited.discard(user)

    def admit(self, entry: dict[str, Any]) -> str | None:
        """Apply one validly signed adding entry; a reason when the room's rules forbid it."""
        action, actor, target = entry["action"], entry["actor"], entry.get("target")
        role = entry.get("role")
        if self.kind == "direct":
            return self._admit_direct(action, actor, target)
        if action == "create":
            if int(entry["seq"]) != 1 or target != actor:
                return "create must be the first entry, by its creator"
            self.creator, self.members[actor] = actor, ADMIN
        elif action == "invite":
            if actor not in self.members:
                return f"{actor} invited while not a member"
            self.invited.add(str(target))
        elif action == "join":
            if target != actor or actor not in self.invited:
                return f"{actor} joined without a valid invite"
            self.invited.discard(actor)
            self.members[actor] = MEMBER
        elif action == "role":
            return self._role(actor, str(target), role)
        return None

    def _admit_direct(self, action: str, actor: str, target: str | None) -> str | None:
        if action == "create":
            if self.members or target != actor:
                return "a 1:1 room is created once, by its opener"
            self.creator, self.members[actor] = actor, MEMBER
            self.pair.add(actor)
        elif action == "join":
            if target is None:
                return "join without a target"
            if len(self.pair) == 1 and actor in self.pair:
                self.pair.add(target)
            if actor not in self.pair or target not in self.pair:
                return "a 1:1 room admits only its two people"
            self.members[target] = MEMBER
        else:
            return f"{action} is not allowed in a 1:1 room"
        return None

    def _role(self, actor: str, target: str, role: Any) -> str | None:
        if target not in self.members or role not in (ADMIN, MEMBER):
            return "role change for a non-member"
        if self.members.get(actor) != ADMIN:
            return f"{actor} is not an admin"
        if role == MEMBER and target != actor and not self.is_owner(actor):
            return "only the owner may demote an admin"
        self.members[target] = role
        return None


def verify(room: str, kind: str, entries: list[dict[str, Any]], keys: KeyLookup) -> Membership:
    state = _Replay(room, kind)
    pending: list[int] = []
    rejected: list[tuple[int, str]] = []
    blocked: set[str] = set()  # users whose admission waits on a pending entry
    ever: set[str] = set()  # everyone validly admitted at some point (their messages count)
    last_seq = 0
    for entry in sorted(entries, key=lambda e: int(e["seq"])):
        seq, action = int(entry["seq"]), str(entry["action"])
        actor, target = str(entry["actor"]), entry.get("target")
        last_seq = seq
        heir_rule = state.removal_just_left_no_admin
        state.removal_just_left_no_admin = False
        if action in ("leave", "kick", "delete"):
            # Removals take effect whoever signed them.
            if action == "delete":
                state.members.clear()
                state.invited.clear()
                state.deleted = True
            else:
                state.remove(str(target if action == "kick" else actor))
            if state.members and ADMIN not in state.members.values() and kind == "group":
                state.removal_just_left_no_admin = True
            continue
        if (
            heir_rule
            and action == "role"
            and entry.get("role") == ADMIN
            and target in state.members
        ):
            # The server's own rule: the longest-standing member becomes admin when the last
            # admin leaves; the leaver cannot sign it (no longer a member), and it admits no one.
            state.members[str(target)] = ADMIN
            continue
        status = _signature_state(room, entry, keys)
        if status == "pending" or (action == "join" and actor in blocked):
            pending.append(seq)
            if action == "invite" and target is not None:
                blocked.add(str(target))
            continue
        if status != "valid":
            rejected.append((seq, status))
            continue
        reason = state.admit(entry)
        if reason is not None:
            rejected.append((seq, reason))
        ever.update(state.members)
    return Membership(room, dict(state.members), pending, rejected, last_seq, sorted(ever))
