"""The fault suite's checker: what was sent and acked against what is stored and shown.

The store is read raw (every document of the test's rooms, no index assumed), so a
duplicate or a hole is seen even if an index that should prevent it were missing. Each
member device is checked against the store: it must show every stored message of its
room exactly once, under the seq the store gave it, with no seq missing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pymongo

from tests.fault.client import FaultClient, Ledger


@dataclass
class Report:
    test: str = ""
    sent: int = 0
    """Distinct msg_ids the clients sent (resends not counted)."""
    accepted: int = 0
    """msg_ids the server acked (``accepted: true``) at least once."""
    archived: int = 0
    """Distinct msg_ids in the message store for the test's rooms."""
    delivered: int = 0
    """(device, msg_id) pairs shown by member devices (expected: archived x members)."""
    expected_deliveries: int = 0
    lost: int = 0
    """Distinct msg_ids that were acked but are not stored, or stored but missing on a member
    device at the end."""
    lost_acked_unstored: int = 0
    duplicated: int = 0
    """Store: documents beyond the first per msg_id or per (room, seq). Devices: a msg_id
    shown under more than one seq."""
    holes: int = 0
    """Missing seqs below a room's highest stored seq, plus the same on every device."""
    unexpected: int = 0
    """Stored or shown messages nobody sent, that changed on the way, that disagree with the
    store's seq, or that a device got for a room it is not in."""
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("notes")
        return data


def read_store(mongo_url: str, database: str, rooms: Iterable[str]) -> list[dict[str, Any]]:
    """Every message document of ``rooms``, straight from the collection."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    try:
        coll = client[database]["messages"]
        return list(coll.find({"room": {"$in": list(rooms)}}, {"_id": 0}))
    finally:
        client.close()


def check(
    test: str, ledger: Ledger, docs: list[dict[str, Any]], clients: list[FaultClient]
) -> Report:
    r = Report(test=test, sent=len(ledger.sent), accepted=len(ledger.accepted))
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    for doc in docs:
        by_id[doc["msg_id"]].append(doc)
        seqs[doc["room"]].append(int(doc["seq"]))
    r.archived = len(by_id)
    r.duplicated += sum(len(copies) - 1 for copies in by_id.values())
    r.duplicated += sum(n - 1 for s in seqs.values() for n in Counter(s).values() if n > 1)
    r.holes += sum(max(s) - len(set(s)) for s in seqs.values() if s)
    for msg_id, copies in by_id.items():
        sent = ledger.sent.get(msg_id)
        if sent is None or any(
            (d["room"], d["sender"], d["ciphertext"]) != (sent.room, sent.sender, sent.ciphertext)
            for d in copies
        ):
            r.unexpected += 1

    lost = {m for m in ledger.accepted if m not in by_id}
    r.lost_acked_unstored = len(lost)
    store_seq = {m: (c[0]["room"], int(c[0]["seq"])) for m, c in by_id.items()}
    room_ids: dict[str, set[str]] = defaultdict(set)
    for msg_id, (room, _) in store_seq.items():
        room_ids[room].add(msg_id)
    missing_per_device = []
    for client in clients:
        shown = client.shown
        ids = Counter(shown.values())
        r.delivered += len(ids)
        r.duplicated += sum(n - 1 for n in ids.values() if n > 1)
        r.holes += (max(shown) - len(shown)) if shown else 0
        r.unexpected += client.foreign + len(client.conflicts)
        r.unexpected += sum(1 for seq, m in shown.items() if store_seq.get(m) != (client.room, seq))
        expected = room_ids[client.room]
        r.expected_deliveries += len(expected)
        missing = expected - ids.keys()
        missing_per_device.append(len(missing))
        lost |= missing
    r.lost = len(lost)
    r.notes = {
        "refused": dict(Counter(ledger.refused.values())),
        "resends": dict(ledger.retried),
        "reconnects": sum(c.reconnects for c in clients),
        "close_codes": dict(sum((c.close_codes for c in clients), Counter())),
        "stalled_sockets": sum(c.stalls for c in clients),
        "resyncs": sum(c.resyncs for c in clients),
        "resync_reasons": dict(sum((c.resync_reasons for c in clients), Counter())),
        "redundant_frames": sum(c.redundant for c in clients),
        "max_missing_on_one_device": max(missing_per_device, default=0),
        "frames": sum(c.frames for c in clients),
        "client_failures": [c.failure for c in clients if c.failure],
    }
    return r
