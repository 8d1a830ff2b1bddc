"""What the client core needs from the profile's local store.

The product store is ``tui.crypto.LocalStore`` (one SQLite file per profile, every secret
wrapped under the passphrase): it satisfies this protocol as it is. The client keeps in it the
outbox (ciphertext waiting for the server's ack), each room's last applied seq, and the ids
of to-device messages already processed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


class OutboxRow(Protocol):
    msg_id: str
    room: str
    body: bytes


class ClientStore(Protocol):
    def outbox_put(self, msg_id: str, room: str, body: bytes) -> None: ...
    def outbox_list(self) -> list[Any]: ...
    def outbox_remove(self, msg_id: str) -> None: ...
    def set_last_seq(self, room: str, seq: int) -> None: ...
    def last_seq(self, room: str) -> int: ...
    def all_last_seqs(self) -> dict[str, int]: ...
    def set_setting(self, name: str, value: str) -> None: ...
    def setting(self, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A room message waiting for the server's ack (resent with the same ``msg_id``)."""

    msg_id: str
    room: str
    ciphertext: str
    kind: str = "m"
    ttl: int | None = None

    def body(self) -> bytes:
        return json.dumps(
            {"ciphertext": self.ciphertext, "kind": self.kind, "ttl": self.ttl}
        ).encode()

    @classmethod
    def from_row(cls, row: OutboxRow) -> Outgoing:
        data = json.loads(row.body)
        return cls(row.msg_id, row.room, data["ciphertext"], data.get("kind", "m"), data.get("ttl"))


class Outbox:
    """The persisted outbox over a ``ClientStore``."""

    def __init__(self, store: ClientStore) -> None:
        self._store = store

    def queue(self, item: Outgoing) -> None:
        self._store.outbox_put(item.msg_id, item.room, item.body())

    def pending(self) -> list[Outgoing]:
        return [Outgoing.from_row(row) for row in self._store.outbox_list()]

    def acked(self, msg_id: str) -> None:
        self._store.outbox_remove(msg_id)

    def __len__(self) -> int:
        return len(self._store.outbox_list())
