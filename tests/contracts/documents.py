"""Helpers shared by the document port's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo

from backend.stores.documents import StoredMessage

T0 = datetime(2025, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)


def msg(room: str, seq: int, msg_id: str | None = None, **fields: object) -> StoredMessage:
    values: dict[str, object] = {
        "room": room,
        "seq": seq,
        "msg_id": msg_id or f"{room}-{seq}",
        "sender": "alice",
        "device": "ALICEPHONE",
        "ts": T0 + timedelta(seconds=seq),
        "ciphertext": f"AwogCipher{room}{seq}",
    }
    values.update(fields)
    return StoredMessage(**values)  # type: ignore[arg-type]


def drop_mongo_database(url: str, database: str) -> None:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url)
    try:
        client.drop_database(database)
    finally:
        client.close()
