"""Prometheus metrics for every service: one registry per service runtime, read at scrape time.

Services already keep plain counters where the work happens (``Intake.accepted``,
``Fanout.delivered``, ``ArchiverCounters``, ``EventPublisher.dropped`` …). Rather than
sprinkle global ``prometheus_client`` objects through the hot paths, each service builds its
own ``CollectorRegistry`` with a ``Readings`` collector that reads those counters when
``GET /<service>/metrics`` is scraped. A registry per runtime (never the global default)
keeps tests that build many apps in one process from colliding, and makes each endpoint
report its own service only. Every registry also carries the process collector (CPU
seconds, resident memory, open file descriptors), so a node's health is on each endpoint.

Values that need an ``await`` to read (queue depth) are refreshed just before rendering.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from backend.common.errors import ApiError
from backend.common.typedefs import SETTINGS
from backend.protocol.errors import ErrorCode
from backend.stores.queue.port import DurableQueue, QueueUnavailable

if TYPE_CHECKING:
    from backend.common.events import EventPublisher

PREFIX = "sealchat_"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; from well under a frame's round trip to "the archiver is stuck"."""

Value = float | int
Labelled = Mapping[tuple[str, ...], Value]


@dataclass(frozen=True, slots=True)
class Reading:
    """One metric read from the running service at scrape time."""

    name: str
    """Without the ``sealchat_`` prefix (and without ``_total`` for counters)."""
    help: str
    kind: Literal["counter", "gauge"]
    read: Callable[[], Value | Labelled]
    """A number, or label values → number when ``labels`` is not empty."""
    labels: tuple[str, ...] = ()


class Readings(Collector):
    """A collector over ``Reading`` callables."""

    def __init__(self, readings: Iterable[Reading]) -> None:
        self._readings = list(readings)

    def collect(self) -> Iterator[Metric]:
        for r in self._readings:
            family: CounterMetricFamily | GaugeMetricFamily
            name = PREFIX + r.name
            if r.kind == "counter":
                family = CounterMetricFamily(name, r.help, labels=r.labels)
            else:
                family = GaugeMetricFamily(name, r.help, labels=r.labels)
            value = r.read()
            if isinstance(value, Mapping):
                for labels, v in sorted(value.items()):
                    family.add_metric(list(labels), float(v))
            else:
                family.add_metric([], float(value))
            yield family


def counter(
    name: str, help: str, read: Callable[[], Value | Labelled], labels: tuple[str, ...] = ()
) -> Reading:
    return Reading(name, help, "counter", read, labels)


def gauge(
    name: str, help: str, read: Callable[[], Value | Labelled], labels: tuple[str, ...] = ()
) -> Reading:
    return Reading(name, help, "gauge", read, labels)


def latency_histogram(name: str, help: str) -> Histogram:
    """A histogram not registered anywhere yet: the runtime owns it, ``ServiceMetrics``
    registers it in that runtime's registry."""
    return Histogram(PREFIX + name, help, buckets=LATENCY_BUCKETS, registry=None)


@dataclass(slots=True)
class Lag:
    """How far behind a consumer is: the age of the oldest message it is handling, else the
    age the last one had when it was finished, for ``IDLE_AFTER`` seconds.

    A consumer working through a backlog gets its next delivery at once (prefetch), so a
    pause longer than that means it is caught up: 0. A stuck one reports a growing age,
    because the message it holds keeps getting older.
    """

    IDLE_AFTER = 1.0

    clock: Callable[[], float] = time.time
    _started: dict[int, float] = field(default_factory=dict)
    _last: float = 0.0
    _finished_at: float = 0.0

    def begin(self, token: int, produced_at: float) -> None:
        self._started[token] = produced_at

    def end(self, token: int) -> None:
        produced = self._started.pop(token, None)
        if produced is not None:
            now = self.clock()
            self._last, self._finished_at = max(0.0, now - produced), now

    def seconds(self) -> float:
        now = self.clock()
        if self._started:
            return max(0.0, now - min(self._started.values()))
        return self._last if now - self._finished_at < self.IDLE_AFTER else 0.0


class EventTally:
    """Counts of emitted events by category and outcome (``result`` / ``reason`` of their
    data), so auth successes, failures and throttled logins are metrics without a second
    set of counters beside the events."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, category: str, data: Mapping[str, object]) -> None:
        self.counts[(category, str(data.get("result", "")), str(data.get("reason", "")))] += 1

    def labelled(self) -> dict[tuple[str, ...], int]:
        out: dict[tuple[str, ...], int] = {k: v for k, v in self.counts.items()}
        return out


class ServiceMetrics:
    """The metrics of one service runtime and how they are rendered."""

    def __init__(
        self,
        readings: Iterable[Reading],
        *,
        histograms: Iterable[Histogram] = (),
        refresh: Callable[[], Awaitable[None]] | None = None,
        process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(Readings(readings))
        for histogram in histograms:
            self.registry.register(histogram)
        if process:
            # Reads /proc/self: CPU seconds, resident memory, open fds (Linux; absent elsewhere).
            ProcessCollector(registry=self.registry)
        self._refresh = refresh

    async def render(self) -> bytes:
        if self._refresh is not None:
            await self._refresh()
        return generate_latest(self.registry)


class QueueDepths:
    """Ready messages per queue, read from the broker just before each scrape. ``kind`` is
    ``work`` for the queues consumers drain and ``dead`` for their dead-letter queues."""

    TIMEOUT = 2.0

    def __init__(self, queue: DurableQueue, work: Sequence[str], dead: Sequence[str]) -> None:
        self._queue = queue
        self._kinds = {**dict.fromkeys(work, "work"), **dict.fromkeys(dead, "dead")}
        self._values: dict[str, float] = dict.fromkeys(self._kinds, math.nan)

    async def refresh(self) -> None:
        for name in self._values:
            try:
                async with asyncio.timeout(self.TIMEOUT):
                    self._values[name] = float(await self._queue.depth(name))
            except (QueueUnavailable, TimeoutError):
                self._values[name] = math.nan  # unknown: Zabbix marks the item unsupported

    def read(self) -> dict[tuple[str, ...], float]:
        return {(name, self._kinds[name]): value for name, value in self._values.items()}

    def reading(self) -> Reading:
        return gauge(
            "queue_depth",
            "Messages ready on the queue, waiting for a consumer",
            self.read,
            labels=("queue", "kind"),
        )


def events_readings(events: EventPublisher) -> list[Reading]:
    """What every service reports about its event records (the log path)."""
    return [
        counter(
            "events",
            "Event records emitted, by category and outcome",
            events.tally.labelled,
            labels=("category", "result", "reason"),
        ),
        counter("events_published", "Event records handed to the queue", lambda: events.published),
        counter(
            "event_log_drops",
            "Event records dropped because the buffer was full (the log path is down or slow)",
            lambda: events.dropped,
        ),
        gauge("event_log_buffered", "Event records waiting for the queue", events.buffered),
    ]


METRICS: web.AppKey[ServiceMetrics] = web.AppKey("metrics", ServiceMetrics)
"""On each service's sub-application: its metrics (``backend/server.py`` sets it)."""

LOOPBACK = ("127.0.0.0/8", "::1/128")


def allowed(remote: str | None, networks: Iterable[str]) -> bool:
    """Whether the peer address (never X-Forwarded-For) is in one of ``networks``."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


async def metrics_view(request: web.Request) -> web.Response:
    """``GET /<service>/metrics``: the Prometheus text exposition of this service.

    Only for peers on loopback or in ``server.metrics_allow``: the numbers are not secret,
    but they tell an outsider how busy the service is, and a load balancer that forwards
    ``/<service>/*`` from the internet connects from its own address, which is not listed.
    """
    networks = (*LOOPBACK, *request.config_dict[SETTINGS].server.metrics_allow)
    if not allowed(request.remote, networks):
        raise ApiError(
            ErrorCode.FORBIDDEN,
            "metrics are served to loopback and server.metrics_allow only: scrape from there",
        )
    body = await request.app[METRICS].render()
    # The classic text format: every Prometheus 2.x/3.x scraper and our Zabbix helper read it.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def parse_samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text → ``{sample name: [(labels, value), …]}`` (tests, the Zabbix script
    and ``sealchatd``'s own checks read endpoints with it)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = sample.value
            out.setdefault(sample.name, []).append(
                (dict(sample.labels), float("nan") if math.isnan(value) else float(value))
            )
    return out
