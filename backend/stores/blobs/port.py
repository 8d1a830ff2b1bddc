"""Blob port: encrypted attachments the server stores and hands out but cannot read.

Adapters: MongoDB (cluster: every chat node sees every blob) and SQLite (embedded). An upload
is streamed in chunks and becomes visible only once complete; one that fails or is over the
size limit leaves nothing behind. Readers get the chunks in order.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

CHUNK_BYTES = 256 * 1024
"""Size of a stored chunk (the last one of a blob may be shorter)."""


class BlobTooLarge(Exception):
    """The upload went past the size limit; nothing of it was kept."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    id: str
    owner: str
    room: str
    size: int
    sha256: str
    """Hex SHA-256 of the stored (encrypted) bytes; the client checks its own copy too."""
    created: datetime


class Rechunker:
    """Turns a stream of any-sized pieces into ``CHUNK_BYTES`` chunks, counting and hashing."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self.digest = hashlib.sha256()

    async def chunks(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        buffer = bytearray()
        async for piece in source:
            self.size += len(piece)
            if self.size > self.max_size:
                raise BlobTooLarge(f"the file is larger than {self.max_size} bytes")
            self.digest.update(piece)
            buffer += piece
            while len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer[:CHUNK_BYTES])
                del buffer[:CHUNK_BYTES]
        if buffer:
            yield bytes(buffer)


class BlobStore(abc.ABC):
    @abc.abstractmethod
    async def setup(self) -> None:
        """Create indexes/tables (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def put(
        self,
        blob_id: str,
        owner: str,
        room: str,
        source: AsyncIterable[bytes],
        *,
        max_size: int,
        now: datetime,
    ) -> BlobInfo:
        """Store the stream under a new id; ``BlobTooLarge`` past ``max_size`` (nothing kept)."""

    @abc.abstractmethod
    async def info(self, blob_id: str) -> BlobInfo | None:
        """The complete blob's record, or None (unknown, or still being uploaded)."""

    @abc.abstractmethod
    def read(self, blob_id: str) -> AsyncIterator[bytes]:
        """The blob's chunks in order (empty for an unknown blob)."""

    @abc.abstractmethod
    async def delete_room(self, room: str) -> int:
        """Remove every blob of a room; how many."""
