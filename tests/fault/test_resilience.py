"""Resilience (issue 9): operations and outages around the fault suite's delivery checker.

The same people, clients, stream and checker as ``test_faults.py``; the faults are a rolling
restart of the chat nodes, the log service going away, a MongoDB or MariaDB server of the
test's own killed for 10 s, a reconnect storm of 200 clients, and a poison message in a
partition queue. Every test asserts lost = duplicated = holes = 0 (``assert_clean``).
Streams are short (50 to 100 msg/s for 6 to 10 s); ``SEALCHAT_FAULT_SECONDS`` scales them.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from backend.common.events import EVENTS_QUEUE
from tests.fault.broker import own_vhost, queue_depth
from tests.fault.cluster import Cluster
from tests.fault.procs import Child, wait_for
from tests.fault.scenario import (
    Scenario,
    Traffic,
    assert_clean,
    stream_seconds,
)

pytestmark = [
    pytest.mark.fault,
    pytest.mark.mariadb,
    pytest.mark.redis,
    pytest.mark.rabbitmq,
    pytest.mark.mongo,
]

RATE = 50.0
"""Messages per second of most scenarios here: the point is the fault, not the load."""
DATABASE_DOWN_SECONDS = 10.0
DRAIN_SECONDS = 90.0


async def metric(child: Child, service: str, name: str) -> float:
    """The sum over all labels of ``sealchat_<name>`` on a service's /metrics (loopback)."""
    url = Cluster.url(child, f"/{service}/metrics")
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, timeout=aiohttp.ClientTimeout(10)) as r,
    ):
        assert r.status == 200, (url, r.status)
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        base = series.split("{", 1)[0]
        if base in (f"sealchat_{name}", f"sealchat_{name}_total"):
            total += float(value)
    return total


async def test_rolling_restart_of_both_chat_nodes(make_cluster):
    cluster = make_cluster()
    await cluster.start(chat_nodes=2)
    scenario = Scenario("rolling restart chat nodes", cluster)
    traffic = Traffic(rate=RATE, seconds=stream_seconds(10))
    stops: list[float] = []

    async def fault() -> None:
        await asyncio.sleep(traffic.seconds * 0.15)
        for node in cluster.chats:
            stops.append(await node.terminate())
            scenario.note(f"SIGTERM {node.name}: clean exit after {stops[-1]:.1f} s")
            took = await node.start()
            scenario.note(f"{node.name} started again; healthy after {took:.1f} s")

    await scenario.people(traffic)
    report = await scenario.run(traffic, fault)
    report.notes["graceful_stop_seconds"] = [round(s, 1) for s in stops]
    assert_clean(report)
    # Every client was on a node that went away, and was told so with 1001 (going away).
    assert report.notes["reconnects"] >= traffic.clients, report.notes
    assert report.notes["close_codes"].get(1001, 0) >= traffic.clients, report.notes


async def test_log_service_down_chat_unaffected(make_cluster):
    with own_vhost() as vhost_url:
        cluster = make_cluster(rabbitmq_url=vhost_url)
        await cluster.start()
        log = await cluster.start_log()
        scenario = Scenario("log service down", cluster)
        traffic = Traffic(rate=RATE, seconds=stream_seconds(8))
        await scenario.people(traffic)
        stored_before = await metric(log, "log", "log_events_stored")
        assert stored_before > 0, "the log service stored no event of the setup"

        async def fault() -> None:
            await asyncio.sleep(traffic.seconds * 0.3)
            await log.kill9()
            scenario.note("kill -9 log service; left down until the check")

        report = await scenario.run(traffic, fault)
        chat = cluster.chats[0]
        report.notes["events_queued_while_log_down"] = await asyncio.to_thread(
            queue_depth, vhost_url, EVENTS_QUEUE.name
        )
        report.notes["chat_events_published"] = await metric(chat, "chat", "events_published")
        report.notes["chat_event_log_drops"] = await metric(chat, "chat", "event_log_drops")
        report.notes["chat_event_log_buffered"] = await metric(chat, "chat", "event_log_buffered")
        scenario.note(
            "while the log service was down: "
            f"{report.notes['events_queued_while_log_down']} event records waited in "
            f"{EVENTS_QUEUE.name}; chat node published "
            f"{report.notes['chat_events_published']:.0f}, dropped "
            f"{report.notes['chat_event_log_drops']:.0f}, buffered "
            f"{report.notes['chat_event_log_buffered']:.0f}"
        )
        assert_clean(report)
        assert report.notes["events_queued_while_log_down"] > 0, report.notes

        # Back again: the new consumer drains what piled up.
        took = await log.start()
        began = time.monotonic()
        drained = await wait_for(
            lambda: _empty(vhost_url, EVENTS_QUEUE.name), DRAIN_SECONDS, step=1.0
        )
        stored_after = await metric(log, "log", "log_events_stored")
        scenario.note(
            f"log service back after {took:.1f} s; queue drained: {drained} in "
            f"{time.monotonic() - began:.1f} s; it stored {stored_after:.0f} records since"
        )
        assert drained, "the log service did not resume consuming"
        assert stored_after >= report.notes["events_queued_while_log_down"], stored_after


async def _empty(url: str, queue: str) -> bool:
    return await asyncio.to_thread(queue_depth, url, queue) == 0
