"""History reads: how a client fills a gap or loads older messages, by per-room ``seq``.

Clients apply live "committed" rings in ``seq`` order and read from here whatever they missed
(``after``), also after every reconnect. The caller has already checked that the reader is a
member of the room; these helpers only bound the work one request can ask for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from backend.chat.pipeline import format_ts
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode
from backend.stores.documents.port import DocumentStore, StoredMessage

MAX_LIMIT = 500
MAX_ROOMS = 500


def message_wire(message: StoredMessage) -> dict[str, Any]:
    """A stored message as the gateway sends it; the same shape as a "committed" ring."""
    wire: dict[str, Any] = {
        "room": message.room,
        "seq": message.seq,
        "msg_id": message.msg_id,
        "sender": message.sender,
        "device": message.device,
        "ts": format_ts(message.ts),
        "kind": message.kind,
        "ciphertext": message.ciphertext,
    }
    if message.expires_at is not None:
        wire["expires_at"] = format_ts(message.expires_at)
    return wire


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(ErrorCode.INVALID, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def _seq(name: str, seq: int, lowest: int) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < lowest:
        raise ApiError(ErrorCode.INVALID, f"{name} must be a whole number of at least {lowest}")
    return seq


class History:
    """Paged reads of a room's archived messages."""

    def __init__(self, documents: DocumentStore) -> None:
        self._documents = documents

    async def after(self, room: str, seq: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``seq`` above ``seq``, oldest first (gap filling)."""
        after, limit = _seq("after", seq, 0), _limit(limit)
        return await self._documents.messages_after(room, after, limit)

    async def before(self, room: str, seq: int, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages below ``seq``, oldest first (scrolling back)."""
        before, limit = _seq("before", seq, 1), _limit(limit)
        return await self._documents.messages_before(room, before, limit)

    async def latest(self, rooms: Sequence[str]) -> dict[str, int]:
        """The last archived ``seq`` of each room (0 for none): what a client must catch up to."""
        unique = list(dict.fromkeys(rooms))
        if len(unique) > MAX_ROOMS:
            raise ApiError(ErrorCode.INVALID, f"ask for at most {MAX_ROOMS} rooms at a time")
        return await self._documents.latest_seq(unique)


def commit_channel(partition: int) -> str:
    """The doorbell channel of one partition's commits.

    One channel per partition, not per room: every chat node subscribes to the same fixed
    few channels at start and picks the members it serves from each ring, so no subscription
    has to follow joins, leaves and connections (and none can lag behind one). The cost, each
    node seeing every room's rings, is small on a cluster of a few chat nodes.
    """
    return f"committed.{partition}"


def commit_channels(partitions: int) -> list[str]:
    """Every commit channel, for a chat node's doorbell subscription."""
    return [commit_channel(p) for p in range(partitions)]


def committed_ring(message: StoredMessage) -> bytes:
    """The compact JSON the archiver rings once ``message`` is in history."""
    return json.dumps(
        {"type": "committed", **message_wire(message)}, separators=(",", ":")
    ).encode()
