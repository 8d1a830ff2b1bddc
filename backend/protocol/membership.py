"""The membership vocabulary shared by the server, the client and the membership signer."""

from __future__ import annotations

from typing import Literal

RoomKind = Literal["direct", "group"]
Role = Literal["admin", "member"]
Action = Literal["create", "invite", "join", "leave", "kick", "delete", "role"]
"""What a membership-log entry records (``invite`` and ``role`` change no membership, but
who may join and who may kick, so clients verify them too)."""
