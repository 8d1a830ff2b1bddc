"""Group commit: write operations queued while a transaction runs share the next one.

SQLite has one writer and every commit waits for the disk (``synchronous=FULL``). Running
the operations that arrive together in one transaction turns N fsyncs into one, and having a
single task do all writes means no two transactions ever compete for the lock. Operations run
in the writer task, so a caller that stops waiting cannot interrupt one half-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.stores.queue.port import QueueUnavailable

log = logging.getLogger("sealchat.queue.embedded")

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[T]]

_MAX_BATCH = 512


class _Job:
    __slots__ = ("future", "op", "touches")

    def __init__(self, op: Operation[Any], future: asyncio.Future[Any], touches: frozenset[str]):
        self.op, self.future, self.touches = op, future, touches


class GroupCommit:
    """Runs submitted operations, in submission order, in as few transactions as possible."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_commit: Callable[[set[str]], None],
        *,
        before_commit: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._before_commit = before_commit
        """Runs last in every transaction (work the batch's operations left for the end)."""
        self._jobs: list[_Job] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, op: Operation[T], *, touches: Iterable[str | None] = ()) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves after its transaction commits.

        ``touches`` names the queues whose consumers should look again after the commit.
        """
        if self._closed:
            raise QueueUnavailable("the queue adapter is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.append(_Job(op, future, frozenset(t for t in touches if t is not None)))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return future

    async def close(self) -> None:
        """Finish what was submitted, then refuse more."""
        self._closed = True
        if self._task is not None:
            await self._task

    async def _drain(self) -> None:
        while self._jobs:
            batch, self._jobs = self._jobs[:_MAX_BATCH], self._jobs[_MAX_BATCH:]
            # A caller that was cancelled before its turn did not happen.
            batch = [job for job in batch if not job.future.cancelled()]
            if not batch:
                continue
            try:
                results = await self._run(batch)
            except Exception as exc:
                if len(batch) == 1:
                    self._fail(batch[0], exc)
                    continue
                # Retry one by one so one bad operation cannot fail its neighbours.
                for job in batch:
                    try:
                        (result,) = await self._run([job])
                    except Exception as single:
                        self._fail(job, single)
                    else:
                        self._done([job], [result])
                continue
            self._done(batch, results)

    async def _run(self, batch: list[_Job]) -> list[Any]:
        async with self._engine.begin() as conn:
            results = [await job.op(conn) for job in batch]
            if self._before_commit is not None:
                await self._before_commit(conn)
            return results

    def _done(self, batch: list[_Job], results: list[Any]) -> None:
        touched: set[str] = set()
        for job, result in zip(batch, results, strict=True):
            touched |= job.touches
            if not job.future.done():
                job.future.set_result(result)
        self._on_commit(touched)

    @staticmethod
    def _fail(job: _Job, exc: Exception) -> None:
        if job.future.done():
            return
        if isinstance(exc, QueueUnavailable):
            job.future.set_exception(exc)
            return
        log.error("queue store write failed", extra={"error": repr(exc)})
        error = QueueUnavailable(f"the queue store failed: {exc!r}")
        error.__cause__ = exc
        job.future.set_exception(error)
