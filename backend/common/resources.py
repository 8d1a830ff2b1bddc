"""Opening the stores a process needs, for the embedded default or the cluster.

The embedded mode keeps everything under ``data_dir``: one SQLite file per store, secrets
mode 0600, and its schema migrated on start. The cluster mode connects to MariaDB, MongoDB,
Redis and RabbitMQ and refuses to serve on an unmigrated schema.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.common.settings import Mode, Settings, SettingsError
from backend.stores.blobs.port import BlobStore
from backend.stores.documents.port import DocumentStore
from backend.stores.ephemeral.port import Doorbell, KeyValue, PresenceBook
from backend.stores.queue.port import DurableQueue
from backend.stores.relational import migrate
from backend.stores.relational.engine import open_engine, open_read_engine

log = logging.getLogger("sealchat.resources")


@dataclass(slots=True)
class Stores:
    engine: AsyncEngine
    kv: KeyValue
    doorbell: Doorbell
    queue: DurableQueue
    documents: DocumentStore | None
    blobs: BlobStore | None = None
    """Encrypted attachments; opened with the document store (the chat service's)."""
    presence: PresenceBook | None = None
    """Which chat node holds whom; opened with the document store (the chat service's)."""
    reads: AsyncEngine | None = None
    """Single-statement reads of the message path (``open_read_engine``); None: ``engine``."""


def data_path(settings: Settings, name: str) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return settings.data_dir / name


def relational_url(settings: Settings) -> str:
    if settings.database.url is not None:
        return settings.database.url.get_secret_value()
    return f"sqlite+aiosqlite:///{data_path(settings, 'sealchat.sqlite3')}"


async def _embedded(
    stack: contextlib.AsyncExitStack, settings: Settings, documents: bool
) -> Stores:
    from backend.stores.blobs.sqlite import SqliteBlobStore
    from backend.stores.documents.sqlite import SqliteDocumentStore
    from backend.stores.ephemeral.memory import (
        MemoryDoorbell,
        MemoryKeyValue,
        MemoryPresenceBook,
    )
    from backend.stores.queue.embedded import SqliteQueue

    engine = open_engine(relational_url(settings))
    stack.push_async_callback(engine.dispose)
    before, after = await migrate.upgrade(engine)
    if before != after:
        log.info("database migrated", extra={"from_revision": before, "to_revision": after})
    kv, doorbell = MemoryKeyValue(), MemoryDoorbell()
    stack.push_async_callback(kv.close)
    stack.push_async_callback(doorbell.close)
    queue = SqliteQueue(data_path(settings, "queue.sqlite3"))
    stack.push_async_callback(queue.close)
    docs, blobs, presence = None, None, None
    if documents:
        presence = MemoryPresenceBook()
        docs = SqliteDocumentStore(data_path(settings, "documents.sqlite3"))
        stack.push_async_callback(docs.close)
        await docs.setup()
        blobs = SqliteBlobStore(data_path(settings, "blobs.sqlite3"))
        stack.push_async_callback(blobs.close)
        await blobs.setup()
    return Stores(engine, kv, doorbell, queue, docs, blobs, presence)


async def _cluster(stack: contextlib.AsyncExitStack, settings: Settings, documents: bool) -> Stores:
    from backend.stores.blobs.mongo import MongoBlobStore
    from backend.stores.documents.mongo import MongoDocumentStore
    from backend.stores.ephemeral.redis import open_redis
    from backend.stores.ephemeral.redis_presence import RedisPresenceBook
    from backend.stores.queue.rabbitmq import RabbitQueue

    def secret(url: object) -> str:
        assert url is not None  # Settings validated that cluster mode has every URL
        return url.get_secret_value()  # type: ignore[attr-defined]

    engine = open_engine(relational_url(settings), pool_size=settings.database.pool_size)
    stack.push_async_callback(engine.dispose)
    await migrate.require_current(engine)
    reads = open_read_engine(relational_url(settings), pool_size=settings.database.pool_size)
    stack.push_async_callback(reads.dispose)
    kv, doorbell = open_redis(secret(settings.redis.url), settings.redis.prefix)
    stack.push_async_callback(kv.close)
    stack.push_async_callback(doorbell.close)
    queue = RabbitQueue(secret(settings.rabbitmq.url))
    stack.push_async_callback(queue.close)
    docs, blobs, presence = None, None, None
    if documents:
        presence = RedisPresenceBook(secret(settings.redis.url), settings.redis.prefix)
        stack.push_async_callback(presence.close)
        if settings.mongo.url is None:
            raise SettingsError("setting mongo.url (SEALCHAT_MONGO__URL): required in cluster mode")
        docs = MongoDocumentStore(secret(settings.mongo.url), settings.mongo.database)
        stack.push_async_callback(docs.close)
        await docs.setup()
        blobs = MongoBlobStore(secret(settings.mongo.url), settings.mongo.database)
        stack.push_async_callback(blobs.close)
        await blobs.setup()
    return Stores(engine, kv, doorbell, queue, docs, blobs, presence, reads)


@contextlib.asynccontextmanager
async def open_stores(settings: Settings, *, documents: bool) -> AsyncIterator[Stores]:
    async with contextlib.AsyncExitStack() as stack:
        opener = _embedded if settings.mode is Mode.EMBEDDED else _cluster
        yield await opener(stack, settings, documents)
