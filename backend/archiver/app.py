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
from backend.archiver.expiry import ExpirySweeper
from backend.auth.schemas import Health
from backend.chat.pipeline import dead_letter_queue, partition_queue
from backend.common.api import RouteTable, reply
from backend.common.events import EventPublisher
from backend.common.metrics import (
    QueueDepths,
    ServiceMetrics,
    counter,
    events_readings,
    gauge,
    metrics_view,
)
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
    async with EventPublisher(stores.queue, "archiver").running() as events:
        archiver = Archiver(
            stores.queue, stores.documents, stores.doorbell, partitions, events=events
        )
        sweeper = ExpirySweeper(stores.documents, settings.chat.expiry_sweep_seconds)
        async with archiver.running(), sweeper.running():
            events.emit("service", "archiver", action="start")
            log.info(
                "archiver ready", extra={"partitions": partitions, "mode": settings.mode.value}
            )
            try:
                yield archiver
            finally:
                events.emit("service", "archiver", action="stop")
                log.info("archiver stopping", extra=archiver.counters.as_dict())


def archiver_metrics(archiver: Archiver, stores: Stores) -> ServiceMetrics:
    names = [partition_queue(p, archiver.namespace) for p in range(archiver.partitions)]
    depths = QueueDepths(stores.queue, names, [dead_letter_queue(archiver.namespace)])
    c = archiver.counters
    events = archiver.events
    assert events is not None  # archiver_service always gives it a publisher
    return ServiceMetrics(
        [
            counter(
                "archiver_messages_archived", "Messages written to history", lambda: c.archived
            ),
            counter(
                "archiver_duplicates",
                "Resent messages found already archived (rung again, stored once)",
                lambda: c.duplicates,
            ),
            counter(
                "archiver_dead_letters",
                "Messages sent to sealchat.messages.dead (malformed, or failing every attempt)",
                lambda: c.dead_lettered,
            ),
            counter("archiver_retries", "Failed archive attempts retried", lambda: c.retries),
            counter(
                "archiver_ring_failures",
                "Commits whose doorbell ring failed (members catch up from history)",
                lambda: c.ring_failures,
            ),
            gauge(
                "archiver_consumer_lag_seconds",
                "Age of the oldest message being archived, or of the last one while catching up",
                archiver.lag.seconds,
            ),
            depths.reading(),
            *events_readings(events),
        ],
        histograms=[archiver.latency],
        refresh=depths.refresh,
    )


async def _health(_: web.Request) -> web.Response:
    return reply(Health(message="alive"))


def create_routes() -> web.Application:
    """The archiver's sub-application: health and metrics (its work is the queue, not HTTP)."""
    app = web.Application()
    table = RouteTable("archiver")
    table.add("GET", "/health", _health, "Liveness", response=Health, auth=False)
    table.add(
        "GET",
        "/metrics",
        metrics_view,
        "Prometheus metrics (from loopback and server.metrics_allow only)",
        auth=False,
    )
    table.register(app)
    return app


@contextlib.asynccontextmanager
async def archiver_runtime(settings: Settings, stores: Stores) -> AsyncIterator[Archiver]:
    """``archiver_service`` with the partition count every node agrees on."""
    async with archiver_service(settings, stores, partitions=settings.chat.partitions) as a:
        yield a
