"""Contract of the blob port, against every adapter (SQLite and MongoDB)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.stores.blobs.mongo import MongoBlobStore
from backend.stores.blobs.port import CHUNK_BYTES, BlobStore, BlobTooLarge
from backend.stores.blobs.sqlite import SqliteBlobStore
from tests.contracts.documents import drop_mongo_database

T0 = datetime(2026, 11, 22, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "sqlite":
        blobs: BlobStore = SqliteBlobStore(tmp_path / "blobs.sqlite3")
    else:
        url: str = request.getfixturevalue("mongo_url")
        database: str = request.getfixturevalue("mongo_database")
        blobs = MongoBlobStore(url, database)
    await blobs.setup()
    try:
        yield blobs
    finally:
        await blobs.close()
        if request.param == "mongo":
            drop_mongo_database(url, database)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_all(store: BlobStore, blob_id: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(blob_id)])


@pytest.mark.parametrize("length", [0, 1, CHUNK_BYTES, CHUNK_BYTES * 2 + 17])
async def test_a_blob_reads_back_byte_for_byte(store: BlobStore, length: int) -> None:
    data = os.urandom(length)
    info = await store.put("b1", "ann", "r1", pieces(data, 10_000), max_size=10**7, now=T0)
    assert (info.size, info.sha256) == (length, hashlib.sha256(data).hexdigest())
    assert await store.info("b1") == info
    assert await read_all(store, "b1") == data


async def test_too_large_keeps_nothing_and_unknown_reads_empty(store: BlobStore) -> None:
    data = os.urandom(CHUNK_BYTES + 100)
    with pytest.raises(BlobTooLarge):
        await store.put("big", "ann", "r1", pieces(data, 4096), max_size=CHUNK_BYTES, now=T0)
    assert await store.info("big") is None
    assert await read_all(store, "big") == b""
    # The id is free again: nothing of the failed upload is left.
    info = await store.put("big", "ann", "r1", pieces(b"ok", 1), max_size=10, now=T0)
    assert await read_all(store, info.id) == b"ok"


async def test_a_failed_upload_leaves_nothing(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(CHUNK_BYTES * 2)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put("b2", "ann", "r1", broken(), max_size=10**7, now=T0)
    assert await store.info("b2") is None
    assert await read_all(store, "b2") == b""


async def test_deleting_a_room_removes_its_blobs_only(store: BlobStore) -> None:
    for blob_id, room in (("x1", "r1"), ("x2", "r1"), ("y1", "r2")):
        await store.put(blob_id, "ann", room, pieces(b"data", 2), max_size=100, now=T0)
    assert await store.delete_room("r1") == 2
    assert await store.info("x1") is None and await store.info("x2") is None
    assert await read_all(store, "y1") == b"data"


async def test_an_upload_cancelled_at_any_step_is_all_or_nothing(store: BlobStore) -> None:
    """Cancelled while its chunks or its record are written, an upload leaves no part of it.

    A cancellation that lands as the write commits may leave the whole blob (the caller could
    not be told); a record without its chunks, or chunks without a record, is never left.
    """
    data = os.urandom(CHUNK_BYTES + 1)
    emptied = 0
    for steps in range(0, 3000, 150):
        sent = asyncio.Event()

        async def source() -> AsyncIterator[bytes]:
            async for piece in pieces(data, 8192):
                yield piece
            sent.set()

        blob_id = f"c{steps}"
        upload = asyncio.create_task(
            store.put(blob_id, "ann", "r1", source(), max_size=10**7, now=T0)
        )
        await sent.wait()
        for _ in range(steps):
            await asyncio.sleep(0)
        upload.cancel()
        await asyncio.gather(upload, return_exceptions=True)
        if await store.info(blob_id) is None:
            emptied += 1
            # No chunk is left behind either: the same id uploads again from chunk 0.
            await store.put(blob_id, "ann", "r1", pieces(b"again", 2), max_size=10, now=T0)
            assert await read_all(store, blob_id) == b"again"
        else:
            assert await read_all(store, blob_id) == data
    assert emptied > 0
