"""SQLite adapter of the blob port (embedded mode): its own file, chunks as rows, the record
written in the same transaction as the last chunk, so a half upload is never visible."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)

from backend.stores.blobs.port import BlobInfo, BlobStore, Rechunker
from backend.stores.documents.timeutil import utc_millis
from backend.stores.relational.engine import open_engine
from backend.stores.relational.types import UTCDateTime

metadata = MetaData()
blobs = Table(
    "blobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("room", String(128), nullable=False, index=True),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
)
chunks = Table(
    "blob_chunks",
    metadata,
    Column("blob", String(64), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)


class SqliteBlobStore(BlobStore):
    def __init__(self, path: Path) -> None:
        self._engine = open_engine(f"sqlite+aiosqlite:///{path}")

    async def setup(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self._engine.dispose()

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
        counter = Rechunker(max_size)
        # One transaction: a failure anywhere (too large, client gone) rolls every chunk back.
        async with self._engine.begin() as conn:
            n = 0
            async for chunk in counter.chunks(source):
                await conn.execute(insert(chunks).values(blob=blob_id, n=n, data=chunk))
                n += 1
            info = BlobInfo(blob_id, owner, room, counter.size, counter.digest.hexdigest(), now)
            await conn.execute(
                insert(blobs).values(
                    id=blob_id,
                    owner=owner,
                    room=room,
                    size=info.size,
                    sha256=info.sha256,
                    created=utc_millis(now),
                )
            )
        return info

    async def info(self, blob_id: str) -> BlobInfo | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(blobs).where(blobs.c.id == blob_id))).first()
        if row is None:
            return None
        return BlobInfo(row.id, row.owner, row.room, row.size, row.sha256, row.created)

    async def read(self, blob_id: str) -> AsyncIterator[bytes]:
        if await self.info(blob_id) is None:
            return
        n = 0
        while True:  # one chunk per query: a reader never holds a connection while it sends
            async with self._engine.connect() as conn:
                data = await conn.scalar(
                    select(chunks.c.data).where(chunks.c.blob == blob_id, chunks.c.n == n)
                )
            if data is None:
                return
            yield bytes(data)
            n += 1

    async def delete_room(self, room: str) -> int:
        async with self._engine.begin() as conn:
            ids = list(await conn.scalars(select(blobs.c.id).where(blobs.c.room == room)))
            if ids:
                await conn.execute(delete(chunks).where(chunks.c.blob.in_(ids)))
                await conn.execute(delete(blobs).where(blobs.c.id.in_(ids)))
        return len(ids)
