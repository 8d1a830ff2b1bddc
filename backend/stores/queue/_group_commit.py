"""Group commit: write operations queued while a transaction runs share the next one.

SQLite has one writer and every commit waits for the disk (``synchronous=FULL``). Running
the operations that arrive together in one transaction turns N fsyncs into one, and having a
single task do all writes means no two transactions ever compete for the lock. Operations run
in the writer task, so a caller that stops waiting cannot interrupt one half-way.

A *row* (``submit_row``: one prepared statement and its parameters, such as a publish or an
ack) costs less than an operation: rows of the same statement next to each other in a batch
go to SQLite as one ``executemany``, one trip to the database thread for all of them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import Executable

from backend.stores.queue.port import QueueUnavailable

log = logging.getLogger("sealchat.queue.embedded")

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[T]]

_MAX_BATCH = 512


Row = tuple[Executable, dict[str, Any]]
"""A statement and the parameters of one execution of it."""


class _Job:
    __slots__ = ("future", "op", "row", "touches")

    def __init__(
        self,
        future: asyncio.Future[Any],
        touches: frozenset[str],
        *,
        op: Operation[Any] | None = None,
        row: Row | None = None,
    ):
        self.future, self.touches, self.op, self.row = future, touches, op, row


class GroupCommit:
    """Runs submitted operations, in submission order, in as few transactions as possible."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_commit: Callable[[set[str]], None],
        *,
        before_commit: Callable[[AsyncConnection, list[Row]], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._before_commit = before_commit
        """Runs last in every transaction, with the rows it wrote (work the batch's
        operations left for the end)."""
        self._jobs: list[_Job] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, op: Operation[T], *, touches: Iterable[str | None] = ()) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves after its transaction commits.

        ``touches`` names the queues whose consumers should look again after the commit.
        """
        return self._submit(_Job(self._future(), _names(touches), op=op))

    def submit_row(
        self, statement: Executable, params: dict[str, Any], *, touches: Iterable[str | None] = ()
    ) -> asyncio.Future[None]:
        """Queue one execution of ``statement``; the future resolves after it commits.

        ``statement`` should be built once and shared: rows are grouped by identity.
        """
        return self._submit(_Job(self._future(), _names(touches), row=(statement, params)))

    def _future(self) -> asyncio.Future[Any]:
        if self._closed:
            raise QueueUnavailable("the queue adapter is closed")
        return asyncio.get_running_loop().create_future()

    def _submit(self, job: _Job) -> asyncio.Future[Any]:
        self._jobs.append(job)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return job.future

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
        results: list[Any] = []
        written: list[Row] = []
        async with self._engine.begin() as conn:
            for key, group in itertools.groupby(batch, key=_statement_id):
                jobs = list(group)
                if key is None:  # operations, one after the other
                    results.extend([await job.op(conn) for job in jobs if job.op is not None])
                    continue
                rows = [job.row for job in jobs if job.row is not None]
                await conn.execute(rows[0][0], [params for _, params in rows])
                written.extend(rows)
                results.extend([None] * len(rows))
            if self._before_commit is not None:
                await self._before_commit(conn, written)
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


def _statement_id(job: _Job) -> int | None:
    """Rows of one statement share a key (the statement's identity); operations have none."""
    return None if job.row is None else id(job.row[0])


def _names(touches: Iterable[str | None]) -> frozenset[str]:
    return frozenset(t for t in touches if t is not None)
