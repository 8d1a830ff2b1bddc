"""Mongo operations run whole: a cancelled caller leaves no half-opened pymongo socket behind.

pymongo 4.20 leaks the socket of a connection it is opening when the awaiting task is
cancelled (PYTHON-5867); the suite turns that ResourceWarning into a failure, and CI hit it
at an app's shutdown. The units below need no server; the last test needs MongoDB.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from backend.stores.documents.mongo import MongoDocumentStore
from backend.stores.whole_operations import WholeOperations
from tests.contracts.documents import drop_mongo_database, msg


async def test_a_cancelled_caller_returns_at_once_and_its_operation_still_ends() -> None:
    operations, release, ended = WholeOperations(), asyncio.Event(), []

    async def operation() -> str:
        await release.wait()
        ended.append("written")
        return "written"

    caller = asyncio.create_task(operations.run(operation()))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert operations.running() == 1 and ended == []
    release.set()
    await operations.settle()
    assert ended == ["written"] and operations.running() == 0


async def test_settle_cancels_what_outlives_its_grace() -> None:
    operations = WholeOperations()
    stuck = asyncio.create_task(operations.run(asyncio.sleep(60)))
    await asyncio.sleep(0)
    await operations.settle(grace=0.05)
    assert operations.running() == 0
    with pytest.raises(asyncio.CancelledError):
        await stuck


async def test_a_failure_after_its_caller_left_is_not_reported_as_unretrieved() -> None:
    operations, unhandled = WholeOperations(), []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("server went away")

    caller = asyncio.create_task(operations.run(failing()))
    await asyncio.sleep(0)
    caller.cancel()
    await operations.settle()
    gc.collect()
    assert unhandled == []


async def test_the_caller_gets_the_operations_result_and_error() -> None:
    operations = WholeOperations()

    async def failing() -> None:
        raise ValueError("bad")

    async def answer() -> int:
        return 42

    assert await operations.run(answer()) == 42
    with pytest.raises(ValueError, match="bad"):
        await operations.run(failing())


@pytest.mark.mongo
async def test_cancelling_operations_while_they_connect_leaks_no_socket(
    mongo_url: str, mongo_database: str
) -> None:
    """Many operations on a fresh client open connections; cancel them at every early step."""
    leaks: list[str] = []
    try:
        for steps in range(12):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await _cancel_after(steps, MongoDocumentStore(mongo_url, mongo_database))
                gc.collect()  # the round's tasks, their tracebacks and any socket left are garbage
            leaks += [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == []
        # A write whose caller had started still happens (close waited for it). At 0 steps the
        # callers were cancelled before they ran, so nothing was started.
        store = MongoDocumentStore(mongo_url, mongo_database)
        try:
            stored = await store.messages_after("cancelled", 0, 100)
            assert [m.seq for m in stored] == list(range(2, 13))
        finally:
            await store.close()
    finally:
        drop_mongo_database(mongo_url, mongo_database)


async def _cancel_after(steps: int, store: MongoDocumentStore) -> None:
    await store.setup()
    callers = [asyncio.create_task(store.latest_seq([f"room-{i}"])) for i in range(20)]
    callers.append(asyncio.create_task(store.insert_message(msg("cancelled", steps + 1))))
    for _ in range(steps):
        await asyncio.sleep(0)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await store.close()
