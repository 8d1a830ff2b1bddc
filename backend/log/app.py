"""The log service: the event log under ``/log/`` (consumer, operators' query API, metrics)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from backend import __version__
from backend.common.events import EventPublisher
from backend.common.metrics import QueueDepths, ServiceMetrics, counter, events_readings, gauge
from backend.common.resources import Stores
from backend.common.settings import Settings
from backend.log import views
from backend.log.consumer import EventConsumer
from backend.log.service import LogQueries

log = logging.getLogger("sealchat.log")

PREFETCH = 64
"""Records in flight between RabbitMQ and the consumer: enough to keep the store busy,
few enough that a consumer crash hands back little."""


@dataclass(slots=True)
class LogRuntime:
    consumer: EventConsumer
    queries: LogQueries
    events: EventPublisher


@contextlib.asynccontextmanager
async def log_service(settings: Settings, stores: Stores) -> AsyncIterator[LogRuntime]:
    if stores.documents is None:
        raise RuntimeError("the log service needs the document store")
    async with (
        EventPublisher(stores.queue, "log").running() as events,
        EventConsumer(stores.queue, stores.documents, prefetch=PREFETCH).running() as consumer,
    ):
        runtime = LogRuntime(consumer=consumer, queries=LogQueries(stores.documents), events=events)
        events.emit("service", "log", action="start")
        log.info("log service ready", extra={"queue": consumer.queue_name})
        try:
            yield runtime
        finally:
            events.emit("service", "log", action="stop")
            log.info("log service stopping", extra=consumer.counters.as_dict())


def log_metrics(runtime: LogRuntime, stores: Stores) -> ServiceMetrics:
    c = runtime.consumer.counters
    spec = runtime.consumer.spec
    dead = [spec.dead_letter] if spec.dead_letter else []
    depths = QueueDepths(stores.queue, [spec.name], dead)
    return ServiceMetrics(
        [
            counter("log_events_stored", "Event records written to logdata", lambda: c.stored),
            counter(
                "log_events_duplicate",
                "Records delivered again and dropped by event_id",
                lambda: c.duplicates,
            ),
            counter(
                "log_dead_letters",
                "Malformed or unstorable records sent to sealchat.events.dead",
                lambda: c.dead_lettered,
            ),
            counter("log_store_retries", "Failed writes to the document store", lambda: c.retries),
            counter(
                "log_consumer_restarts",
                "Times the consumer re-attached (queue unavailable or a failure)",
                lambda: c.restarts,
            ),
            gauge(
                "log_consumer_lag_seconds",
                "Age of the record being stored, or of the last one while catching up",
                runtime.consumer.lag.seconds,
            ),
            depths.reading(),
            *events_readings(runtime.events),
        ],
        refresh=depths.refresh,
    )


def create_routes() -> web.Application:
    """The log sub-application: routes only; resources come from the root app."""
    app = web.Application()
    table = views.routes()
    document = table.openapi(title="sealchat log", version=__version__)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    table.register(app)
    app.router.add_get("/openapi.json", openapi)
    return app


def create_app(settings: Settings) -> web.Application:
    """The log service alone, mounted under /log/ (cluster mode and tests)."""
    from backend.server import build_root

    return build_root(settings, ["log"])
