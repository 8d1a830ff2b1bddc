"""The archiver as a service runtime: ``sealchatd archiver`` alone, or inside ``sealchatd all``.

It has no HTTP routes of its own; the runtime is entered after the stores open and left
before they close, like every service's (``backend/server.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from backend.archiver.archiver import Archiver
from backend.auth.schemas import Health
from backend.common.api import RouteTable, reply
from backend.common.resources import Stores
from backend.common.settings import Settings

log = logging.getLogger("sealchat.archiver")


@contextlib.asynccontextmanager
async def archiver_service(
    settings: Settings, stores: Stores, *, partitions: int | None = None
) -> AsyncIterator[Archiver]:
    """Run an archiver over ``stores`` until the block exits (its tasks are cancelled and
    awaited then; whatever they held unacked goes back to the queue).

    ``partitions`` defaults to ``chat.partitions``: the intake and the archiver must agree.
    """
    if stores.documents is None:
        raise RuntimeError("the archiver needs the document store")
    partitions = partitions or settings.chat.partitions
    archiver = Archiver(stores.queue, stores.documents, stores.doorbell, partitions)
    async with archiver.running():
        log.info("archiver ready", extra={"partitions": partitions, "mode": settings.mode.value})
        try:
            yield archiver
        finally:
            log.info("archiver stopping", extra=archiver.counters.as_dict())


async def _health(_: web.Request) -> web.Response:
    return reply(Health(message="alive"))


def create_routes() -> web.Application:
    """The archiver's sub-application: health only (its work is the queue, not HTTP)."""
    app = web.Application()
    table = RouteTable("archiver")
    table.add("GET", "/health", _health, "Liveness", response=Health, auth=False)
    table.register(app)
    return app


@contextlib.asynccontextmanager
async def archiver_runtime(settings: Settings, stores: Stores) -> AsyncIterator[Archiver]:
    """``archiver_service`` with the partition count every node agrees on."""
    async with archiver_service(settings, stores, partitions=settings.chat.partitions) as a:
        yield a
