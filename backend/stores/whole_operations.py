"""pymongo operations that a caller's cancellation does not cut short.

pymongo 4.20's async pool opens a connection on a raw socket that it closes on ``OSError`` and
timeouts only: a task cancelled while its operation is connecting leaves that socket open
(PYTHON-5867). Apps cancel their tasks at shutdown, so the Mongo adapters run each operation
as a task of its own. The caller sees its cancellation at once; the operation ends by itself
and returns its connection to the pool; ``settle`` (called by the adapter's ``close``) waits
for what is still running before the client is closed.

A cancelled write may therefore still happen. That was already so (the server may have
applied it before the cancellation), and every write here is idempotent or deduplicated.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

# How long ``settle`` waits: longer than an operation on a live server, shorter than pymongo's
# 30 s server selection when the server is gone (those operations hold no socket yet).
SETTLE_SECONDS = 5.0


class WholeOperations:
    """The operations of one client still running; see the module's docstring."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def start(self, operation: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(operation)
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    async def run(self, operation: Coroutine[Any, Any, T]) -> T:
        # shield: cancelling the caller cancels only the wait, not the operation.
        return await asyncio.shield(self.start(operation))

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            # Retrieved here: a caller that was cancelled no longer will, and asyncio would
            # log the error as never retrieved. A caller still waiting gets it all the same.
            task.exception()

    def running(self) -> int:
        return len(self._running)

    async def settle(self, grace: float = SETTLE_SECONDS) -> None:
        """Wait up to ``grace`` seconds for running operations, then cancel what is left."""
        if not self._running:
            return
        _ended, late = await asyncio.wait(set(self._running), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


class HasWholeOperations(Protocol):
    operations: WholeOperations


S = TypeVar("S", bound=HasWholeOperations)


def whole(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run an adapter method through its ``operations``: a cancelled caller does not cut it."""

    @functools.wraps(method)
    async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.operations.run(method(self, *args, **kwargs))

    return run
