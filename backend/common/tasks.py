"""Stopping background tasks for sure.

A store client that turns a cancellation into an error of its own (which a retry loop then
catches), or swallows it, lets a cancelled task run on; a shutdown that waits for that task
never ends. Seen in the test suite: an archiver partition and the presence recorder went back
to waiting for work after being cancelled, and the test server's shutdown hung. So loops that
catch broad errors ask ``stop_if_cancelled()`` after every unit of work and in their error
path, and shutdowns wait for their tasks a bounded time (``stop_tasks``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

log = logging.getLogger("sealchat.tasks")

STOP_WITHIN = 5.0
"""Seconds a shutdown waits for its cancelled tasks."""


def cancel_requested() -> bool:
    """Whether the running task was asked to stop, even if the request was swallowed."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when the running task was asked to stop."""
    if cancel_requested():
        raise asyncio.CancelledError


async def stop_tasks(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them, at most ``STOP_WITHIN`` seconds."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, running = await asyncio.wait(tasks, timeout=STOP_WITHIN)
    if running:
        log.error(
            "tasks still running after cancellation; shutting down without them",
            extra={"tasks": sorted(t.get_name() for t in running)},
        )
