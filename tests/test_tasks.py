"""Background tasks stop for sure: a swallowed cancellation is noticed after the unit of work,
and a shutdown waits a bounded time for a task that never stops."""

from __future__ import annotations

import asyncio

import pytest

from backend.common import tasks
from backend.common.tasks import cancel_requested, stop_if_cancelled, stop_tasks


async def swallowing_worker(work: asyncio.Queue[int], done: list[int]) -> None:
    """A loop whose unit of work lets a store client turn the cancellation into its error."""
    while True:
        item = await work.get()
        try:
            try:
                await asyncio.sleep(0.05)  # the store call, cancelled here
            except asyncio.CancelledError:
                raise ConnectionError("connection reset") from None
        except Exception:
            stop_if_cancelled()
        done.append(item)
        stop_if_cancelled()


async def test_a_cancellation_turned_into_an_error_still_stops_the_loop():
    work: asyncio.Queue[int] = asyncio.Queue()
    done: list[int] = []
    task = asyncio.create_task(swallowing_worker(work, done))
    work.put_nowait(1)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await task
    assert done == []


async def test_stop_tasks_gives_up_on_a_task_that_ignores_cancellation(monkeypatch):
    monkeypatch.setattr(tasks, "STOP_WITHIN", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # swallowed: without a bound the shutdown would wait forever

    task = asyncio.create_task(stubborn())
    quiet = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await stop_tasks([task, quiet])
    assert quiet.cancelled() and not task.done()
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=2)


async def test_cancel_requested_is_false_in_a_task_not_asked_to_stop():
    assert not cancel_requested()
    stop_if_cancelled()  # nothing raised
