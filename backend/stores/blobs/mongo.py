"""MongoDB adapter of the blob port: a ``blobs`` record per file, ``blob_chunks`` holding its
chunks. The record is written last, so a blob with no record is an upload in progress (or an
abandoned one, removed when its upload fails)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Any

from bson.binary import Binary
from pymongo import ASCENDING, AsyncMongoClient, IndexModel

from backend.stores.blobs.port import BlobInfo, BlobStore, Rechunker
from backend.stores.documents.timeutil import utc
from backend.stores.whole_operations import WholeOperations, whole


class MongoBlobStore(BlobStore):
    def __init__(self, url: str, database: str) -> None:
        self.operations = WholeOperations()
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
        db = self._client[database]
        self._blobs = db["blobs"]
        self._chunks = db["blob_chunks"]

    @whole
    async def setup(self) -> None:
        await self._blobs.create_indexes(
            [IndexModel([("id", ASCENDING)], unique=True), IndexModel([("room", ASCENDING)])]
        )
        await self._chunks.create_indexes(
            [IndexModel([("blob", ASCENDING), ("n", ASCENDING)], unique=True)]
        )

    async def close(self) -> None:
        await self.operations.settle()
        await self._client.close()

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
        writing: asyncio.Task[Any] | None = None
        try:
            n = 0
            async for chunk in counter.chunks(source):
                doc = {"blob": blob_id, "n": n, "data": Binary(chunk)}
                writing = self.operations.start(self._chunks.insert_one(doc))
                await asyncio.shield(writing)
                n += 1
            info = BlobInfo(blob_id, owner, room, counter.size, counter.digest.hexdigest(), now)
            record = {
                "id": blob_id,
                "owner": owner,
                "room": room,
                "size": info.size,
                "sha256": info.sha256,
                "created": utc(now),
            }
            writing = self.operations.start(self._blobs.insert_one(record))
            await asyncio.shield(writing)
        except BaseException:
            if writing is not None:
                await asyncio.wait([writing])  # a cancelled caller left it running: let it end
            await self.operations.run(self._discard(blob_id))
            raise
        return info

    async def _discard(self, blob_id: str) -> None:
        await self._blobs.delete_one({"id": blob_id})
        await self._chunks.delete_many({"blob": blob_id})

    @whole
    async def info(self, blob_id: str) -> BlobInfo | None:
        doc = await self._blobs.find_one({"id": blob_id})
        if doc is None:
            return None
        return BlobInfo(
            doc["id"], doc["owner"], doc["room"], doc["size"], doc["sha256"], doc["created"]
        )

    async def read(self, blob_id: str) -> AsyncIterator[bytes]:
        if await self.operations.run(self._blobs.find_one({"id": blob_id}, {"_id": 1})) is None:
            return
        cursor = self._chunks.find({"blob": blob_id}).sort("n", ASCENDING)
        try:
            # A chunk at a time: each fetch is an operation of its own (see whole_operations).
            while chunk := await self.operations.run(cursor.to_list(1)):
                yield bytes(chunk[0]["data"])
        finally:
            await self.operations.run(cursor.close())

    @whole
    async def delete_room(self, room: str) -> int:
        ids = [d["id"] async for d in self._blobs.find({"room": room}, {"id": 1})]
        if ids:
            await self._blobs.delete_many({"id": {"$in": ids}})
            await self._chunks.delete_many({"blob": {"$in": ids}})
        return len(ids)
