"""MongoDB adapter of the document port (cluster mode), on pymongo's ``AsyncMongoClient``.

Only standard commands (CRUD, ``createIndexes``, ``aggregate``, ``collMod``) so the same code
runs on ``mongod`` 7 and on the MongoDB-wire-compatible server the tests start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from pymongo.write_concern import WriteConcern

from backend.stores.documents.port import (
    EXPIRED,
    DocumentStore,
    EventQuery,
    EventRecord,
    StoredMessage,
    ToDevice,
)
from backend.stores.documents.timeutil import utc
from backend.stores.whole_operations import WholeOperations, whole

Doc = dict[str, Any]

# Acknowledged messages, seq counters and key shares must survive a failover and a power cut
# (a rolled-back counter would hand out a seq twice).
_DURABLE = WriteConcern(w="majority", j=True)
# createIndexes answers with one of these when the TTL of an existing index differs
# (mongod: IndexOptionsConflict; some compatible servers: IndexKeySpecsConflict).
_INDEX_CONFLICT_CODES = frozenset({85, 86})
_DUPLICATE_KEY = 11000
_MESSAGE_FIELDS = ("room", "seq", "msg_id", "sender", "device", "ts", "ciphertext", "kind")
_TO_DEVICE_FIELDS = (
    "id",
    "recipient_user",
    "recipient_device",
    "sender_user",
    "sender_device",
    "ts",
    "ciphertext",
)


class MongoDocumentStore(DocumentStore):
    """Collections ``messages``, ``counters``, ``to_device`` and ``logdata`` in one database."""

    def __init__(self, url: str, database: str) -> None:
        self.operations = WholeOperations()
        self._client: AsyncMongoClient[Doc] = AsyncMongoClient(url, tz_aware=True, tzinfo=UTC)
        db = self._client.get_database(database)
        self._db = db
        self._messages: AsyncCollection[Doc] = db.get_collection("messages", write_concern=_DURABLE)
        self._counters: AsyncCollection[Doc] = db.get_collection("counters", write_concern=_DURABLE)
        self._to_device: AsyncCollection[Doc] = db.get_collection(
            "to_device", write_concern=_DURABLE
        )
        self._events: AsyncCollection[Doc] = db.get_collection("logdata")
        self._retention = timedelta(days=30)

    # --- lifecycle -------------------------------------------------------------------------
    @whole
    async def setup(self, *, event_retention_days: int = 30) -> None:
        if event_retention_days < 1:
            raise ValueError("event_retention_days must be at least 1")
        self._retention = timedelta(days=event_retention_days)
        await self._messages.create_indexes(
            [
                IndexModel([("msg_id", ASCENDING)], unique=True),
                IndexModel([("room", ASCENDING), ("seq", ASCENDING)], unique=True),
                # Only disappearing messages carry the field, so the sweep reads a small index.
                IndexModel([("expires_at", ASCENDING)], sparse=True),
            ]
        )
        inbox = [("recipient_user", ASCENDING), ("recipient_device", ASCENDING), ("ts", ASCENDING)]
        await self._to_device.create_indexes(
            [IndexModel([("id", ASCENDING)], unique=True), IndexModel(inbox)]
        )
        await self._events.create_indexes(
            [
                IndexModel([("event_id", ASCENDING)], unique=True),
                IndexModel([("server", ASCENDING), ("category", ASCENDING)]),
                IndexModel([("id", ASCENDING)]),
            ]
        )
        await self._ensure_event_ttl(event_retention_days * 86400)

    async def _ensure_event_ttl(self, seconds: int) -> None:
        """Create the TTL index on ``datetime``, or retune it when the retention changed."""
        try:
            await self._events.create_index([("datetime", ASCENDING)], expireAfterSeconds=seconds)
        except OperationFailure as exc:
            if exc.code not in _INDEX_CONFLICT_CODES:
                raise
            await self._db.command(
                {
                    "collMod": self._events.name,
                    "index": {"keyPattern": {"datetime": 1}, "expireAfterSeconds": seconds},
                }
            )

    async def close(self) -> None:
        await self.operations.settle()
        await self._client.close()

    # --- room messages -----------------------------------------------------------------------
    @whole
    async def find_message(self, msg_id: str) -> StoredMessage | None:
        doc = await self._messages.find_one({"msg_id": msg_id})
        return None if doc is None else _message(doc)

    @whole
    async def next_seq(self, room: str) -> int:
        # The increment never upserts: a findAndModify whose upsert races another one can
        # answer with no post-image (SecantusDB does) although it incremented, losing a seq.
        # So create the counter at 0 on its own, idempotently, and only then increment it.
        for _attempt in range(3):
            doc = await self._counters.find_one_and_update(
                {"_id": room}, {"$inc": {"seq": 1}}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return int(doc["seq"])
            try:
                await self._counters.update_one(
                    {"_id": room}, {"$setOnInsert": {"seq": 0}}, upsert=True
                )
            except DuplicateKeyError:
                pass  # a concurrent first call created it: just increment
        raise RuntimeError(f"could not allocate a seq for room {room!r}")

    @whole
    async def insert_message(self, message: StoredMessage) -> bool:
        try:
            await self._messages.insert_one(_message_doc(message))
        except DuplicateKeyError:
            # Only a msg_id clash is a dedupe; a (room, seq) clash is a bug and must surface.
            if await self._messages.find_one({"msg_id": message.msg_id}, {"_id": 1}) is None:
                raise
            return False
        return True

    @whole
    async def insert_messages(self, batch: Sequence[StoredMessage]) -> int:
        if not batch:
            return 0
        try:
            # Ordered: a clash stops the batch there, so what was written is a prefix.
            await self._messages.insert_many([_message_doc(m) for m in batch], ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or [{}]
            first = errors[0]
            index = first.get("index")
            if first.get("code") != _DUPLICATE_KEY or not isinstance(index, int):
                raise
            # Only a msg_id clash is a dedupe; a (room, seq) clash is a bug and must surface.
            clash = batch[index].msg_id
            if await self._messages.find_one({"msg_id": clash}, {"_id": 1}) is None:
                raise
            return index
        return len(batch)

    @whole
    async def messages_after(self, room: str, after: int, limit: int) -> list[StoredMessage]:
        if limit < 1:
            return []
        cursor = self._messages.find({"room": room, "seq": {"$gt": after}})
        docs = await cursor.sort("seq", ASCENDING).limit(limit).to_list()
        return [_message(d) for d in docs]

    @whole
    async def messages_before(self, room: str, before: int, limit: int) -> list[StoredMessage]:
        if limit < 1:
            return []
        cursor = self._messages.find({"room": room, "seq": {"$lt": before}})
        docs = await cursor.sort("seq", DESCENDING).limit(limit).to_list()
        return [_message(d) for d in reversed(docs)]

    @whole
    async def latest_seq(self, rooms: Sequence[str]) -> dict[str, int]:
        latest = dict.fromkeys(rooms, 0)
        if not latest:
            return latest
        cursor = await self._messages.aggregate(
            [
                {"$match": {"room": {"$in": list(latest)}}},
                {"$group": {"_id": "$room", "seq": {"$max": "$seq"}}},
            ]
        )
        async for row in cursor:
            latest[row["_id"]] = int(row["seq"])
        return latest

    @whole
    async def delete_room(self, room: str) -> int:
        result = await self._messages.delete_many({"room": room})
        await self._counters.delete_one({"_id": room})
        return result.deleted_count

    @whole
    async def expire_messages(self, now: datetime) -> int:
        result = await self._messages.update_many(
            {"expires_at": {"$lte": utc(now)}, "kind": {"$ne": EXPIRED}},
            {"$set": {"ciphertext": "", "kind": EXPIRED}},
        )
        return result.modified_count

    # --- to-device queue ---------------------------------------------------------------------
    @whole
    async def put_to_device(self, message: ToDevice) -> bool:
        doc = {name: getattr(message, name) for name in _TO_DEVICE_FIELDS}
        doc["ts"] = utc(message.ts)
        try:
            await self._to_device.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    @whole
    async def pending_to_device(self, user: str, device: str, limit: int) -> list[ToDevice]:
        if limit < 1:
            return []
        cursor = self._to_device.find({"recipient_user": user, "recipient_device": device})
        # _id breaks ties of equal ts in insertion order.
        docs = await cursor.sort([("ts", ASCENDING), ("_id", ASCENDING)]).limit(limit).to_list()
        return [ToDevice(**{name: d[name] for name in _TO_DEVICE_FIELDS}) for d in docs]

    @whole
    async def ack_to_device(self, user: str, device: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        result = await self._to_device.delete_many(
            {"recipient_user": user, "recipient_device": device, "id": {"$in": list(ids)}}
        )
        return result.deleted_count

    @whole
    async def delete_device_inbox(self, user: str, device: str | None = None) -> int:
        query: Doc = {"recipient_user": user}
        if device is not None:
            query["recipient_device"] = device
        result = await self._to_device.delete_many(query)
        return result.deleted_count

    # --- event log -------------------------------------------------------------------------
    @whole
    async def insert_events(self, events: Sequence[EventRecord]) -> int:
        if not events:
            return 0
        try:
            # Unordered: a repeat is skipped and the rest of the batch still goes in.
            await self._events.insert_many([_event_doc(e) for e in events], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or [{}]
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise
            return int(exc.details.get("nInserted", 0))
        return len(events)

    @whole
    async def query_events(self, query: EventQuery) -> list[EventRecord]:
        if query.limit < 1:
            return []
        # The TTL monitor sweeps only once a minute; the floor hides what it has not reached.
        floor = datetime.now(UTC) - self._retention
        when: Doc = {"$gte": floor if query.since is None else max(floor, utc(query.since))}
        if query.until is not None:
            when["$lt"] = utc(query.until)
        match: Doc = {"datetime": when}
        for name in ("server", "category", "id"):
            value = getattr(query, name)
            if value is not None:
                match[name] = value
        cursor = self._events.find(match).sort("datetime", DESCENDING).limit(query.limit)
        return [_event(d) for d in await cursor.to_list()]


def _event_doc(event: EventRecord) -> Doc:
    return {
        "event_id": event.event_id,
        "datetime": utc(event.datetime),
        "server": event.server,
        "category": event.category,
        "id": event.id,
        "data": dict(event.data),
        "request_id": event.request_id,
    }


def _message_doc(message: StoredMessage) -> Doc:
    doc: Doc = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
    doc["ts"] = utc(message.ts)
    if message.expires_at is not None:
        doc["expires_at"] = utc(message.expires_at)
    return doc


def _message(doc: Mapping[str, Any]) -> StoredMessage:
    return StoredMessage(
        **{name: doc[name] for name in _MESSAGE_FIELDS}, expires_at=doc.get("expires_at")
    )


def _event(doc: Mapping[str, Any]) -> EventRecord:
    return EventRecord(
        event_id=doc["event_id"],
        datetime=doc["datetime"],
        server=doc["server"],
        category=doc["category"],
        id=doc["id"],
        data=doc.get("data") or {},
        request_id=doc.get("request_id"),
    )
