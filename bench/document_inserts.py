"""What archiving a message costs the document store, by index layout
(``python -m bench.document_inserts``).

Starts a SecantusDB of its own (or uses ``--url``, a real ``mongod`` for instance), builds the
collections with the project's ``MongoDocumentStore.setup`` and archives ``--count`` messages
through ``insert_messages`` in batches of ``--batch`` (50 rooms, 200-character ciphertext, as
in the fan-out bench), which is what the archiver does; a run that did not store every
message exactly once fails. A layout is the adapter's own, or the adapter's with some of the
messages collection's indexes dropped (``--drop``), to show what each index costs per
message. The layouts alternate in each of ``--pairs`` rounds, each in a database of its own.
Reported per run: messages/s, the store's CPU per message (read from ``/proc``, so only for
the SecantusDB started here) and this process's. The SecantusDB started here is pinned to
CPU 0 and this process to CPU 1, as the fan-out bench pins servers and generator (with
``--url`` nothing is pinned). The messages carry no ``expires_at``, like most messages, so
the sparse index on it holds none of them. No thresholds: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from backend.stores.documents.mongo import MongoDocumentStore
from backend.stores.documents.port import StoredMessage
from bench.procs import (
    LOADGEN_CPUS,
    SERVER_CPUS,
    TICK,
    cpu_ticks,
    own_cpu_seconds,
    pin,
    secantus,
)
from bench.targets import SEALCHAT_CIPHERTEXT, body

ROOMS = 50


def _messages(count: int, first: int) -> list[StoredMessage]:
    now = datetime.now(UTC)
    return [
        StoredMessage(
            room=f"room{n % ROOMS}",
            seq=n // ROOMS + 1,
            msg_id=uuid.uuid4().hex,
            sender=f"user{n % 500}",
            device="BENCHDEVICE",
            ts=now,
            ciphertext=body(n, 0, SEALCHAT_CIPHERTEXT),
        )
        for n in range(first, first + count)
    ]


async def _run(url: str, store_pid: int | None, drop: list[str], count: int, batch: int) -> str:
    database = f"bench_inserts_{uuid.uuid4().hex[:8]}"
    store = MongoDocumentStore(url, database)
    admin: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        await store.setup()
        collection = admin[database]["messages"]
        for index in drop:
            try:
                await collection.drop_index(index)
            except OperationFailure:
                names = ", ".join(sorted(await collection.index_information()))
                raise SystemExit(f"--drop {index}: no such index; there are {names}") from None
        await store.insert_messages(_messages(batch, 0))  # connections, caches
        work = [_messages(batch, batch * (1 + n)) for n in range(count // batch)]
        count = batch * len(work)
        server = sum(cpu_ticks(store_pid)) if store_pid else 0
        own, began = own_cpu_seconds(), time.perf_counter()
        stored = 0
        for chunk in work:
            stored += await store.insert_messages(chunk)
        took = time.perf_counter() - began
        own_us = (own_cpu_seconds() - own) / count * 1e6
        server_us = (sum(cpu_ticks(store_pid)) - server) / TICK / count * 1e6 if store_pid else 0
        in_store = await collection.count_documents({})  # outside the measured window
        if stored != count or in_store != count + batch:
            raise SystemExit(f"stored {stored} of {count} messages ({in_store} in the collection)")
    finally:
        with contextlib.suppress(Exception):
            await admin.drop_database(database)
        await admin.close()
        await store.close()
    store_cpu = f"store {server_us:6.1f} µs" if store_pid else "store   (not ours)"
    return f"{count / took:8,.0f} msgs/s  {store_cpu}  client {own_us:5.1f} µs per message"


async def _main(args: argparse.Namespace) -> None:
    layouts = [[], *([name for name in d.split(",") if name] for d in args.drop)]
    with tempfile.TemporaryDirectory(prefix="sealbench-inserts") as workdir:
        child = None
        url = args.url
        if url is None:
            child = secantus(Path(workdir))
            await child.start()
            pin(child.pid, SERVER_CPUS)
            url = f"mongodb://127.0.0.1:{child.port}"
            pin(os.getpid(), LOADGEN_CPUS)
        try:
            for _ in range(args.pairs):
                for drop in layouts:
                    figures = await _run(
                        url, child.pid if child else None, drop, args.count, args.batch
                    )
                    name = "without " + ", ".join(drop) if drop else "as the adapter builds it"
                    print(f"batch {args.batch:4}  {name:38} {figures}", flush=True)
        finally:
            if child is not None:
                await child.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a MongoDB server to use instead of a SecantusDB of its own")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of every layout (3)")
    parser.add_argument("--count", type=int, default=6000, help="messages per run (6000)")
    parser.add_argument("--batch", type=int, default=100, help="messages per insert (100)")
    parser.add_argument(
        "--drop",
        action="append",
        default=None,
        help="comma-separated indexes of the messages collection to drop for one more "
        "layout; repeatable (default: msg_id_1, then msg_id_1,expires_at_1)",
    )
    args = parser.parse_args()
    if args.drop is None:
        args.drop = ["msg_id_1", "msg_id_1,expires_at_1"]
    if args.count < args.batch or args.batch < 1:
        parser.error("--count must be at least --batch, and --batch at least 1")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
