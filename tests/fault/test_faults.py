"""The fault suite: real ``sealchatd`` processes, real clients, faults injected mid-stream.

Each test streams messages through separate auth, chat and archiver processes in cluster
mode (MariaDB, Redis, RabbitMQ, a MongoDB-wire server), injects one fault, lets the system
settle and runs the checker (``checker.py``). The last two tests are negative controls: the
same checker, run against a deliberately broken server or client, must report loss.
Stream lengths scale with ``SEALCHAT_FAULT_SECONDS`` (default 30: the steady test's length).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fault.cluster import own_rabbitmq, own_redis
from tests.fault.conftest import record
from tests.fault.scenario import (
    Scenario,
    Traffic,
    assert_clean,
    killed_and_restarted,
    stream_seconds,
)

pytestmark = [
    pytest.mark.fault,
    pytest.mark.mariadb,
    pytest.mark.redis,
    pytest.mark.rabbitmq,
    pytest.mark.mongo,
]

ARCHIVER_DOWN_SECONDS = 10.0
FAULT_RATE = 100.0
"""Messages per second while a fault is injected (the steady test runs at 200/s): the
archiver must also catch up with what piled up during the fault, within the time box."""


async def test_steady_load(make_cluster):
    cluster = make_cluster()
    await cluster.start()
    scenario = Scenario("steady load", cluster)
    traffic = Traffic(seconds=stream_seconds(30))
    await scenario.people(traffic)
    report = await scenario.run(traffic)
    assert_clean(report)


async def test_chat_node_killed_clients_move_to_the_other(make_cluster):
    cluster = make_cluster()
    await cluster.start(chat_nodes=2)
    scenario = Scenario("kill -9 chat node", cluster)
    traffic = Traffic(rate=FAULT_RATE, seconds=stream_seconds(10))

    async def fault() -> None:
        await asyncio.sleep(traffic.seconds * 0.4)
        victim = cluster.chats[0]
        await victim.kill9()
        scenario.note(f"kill -9 {victim.name}; its clients reconnect to {cluster.chats[1].name}")

    await scenario.people(traffic)
    report = await scenario.run(traffic, fault)
    assert_clean(report)
    assert report.notes["reconnects"] >= traffic.clients // 2, report.notes


async def test_archiver_killed_and_restarted_10s_later(make_cluster):
    cluster = make_cluster()
    await cluster.start()
    scenario = Scenario("kill -9 archiver", cluster)
    traffic = Traffic(rate=FAULT_RATE, seconds=stream_seconds(8))
    await scenario.people(traffic)
    assert cluster.archiver is not None
    fault = killed_and_restarted(
        scenario, cluster.archiver, traffic.seconds * 0.3, ARCHIVER_DOWN_SECONDS
    )
    report = await scenario.run(traffic, lambda: fault)
    assert_clean(report)


async def test_rabbitmq_restart_loses_nothing_acked(make_cluster, supervisor):
    rabbit, url = own_rabbitmq(supervisor)
    took = await rabbit.start()
    cluster = make_cluster(rabbitmq_url=url)
    await cluster.start()
    scenario = Scenario("RabbitMQ kill -9 + restart", cluster)
    scenario.note(f"own RabbitMQ node started in {took:.1f} s (until its AMQP port answered)")
    traffic = Traffic(rate=FAULT_RATE, seconds=stream_seconds(10))
    await scenario.people(traffic)
    after = traffic.seconds * 0.3
    report = await scenario.run(traffic, lambda: killed_and_restarted(scenario, rabbit, after, 0.5))
    report.notes["rabbitmq_start_seconds"] = [round(t, 1) for t in rabbit.starts]
    scenario.note(
        f"RabbitMQ start times (first, restart): {report.notes['rabbitmq_start_seconds']}"
    )
    assert_clean(report)


async def test_redis_restart_missed_doorbells_are_recovered(make_cluster, supervisor):
    redis, url = own_redis(supervisor)
    await redis.start()
    cluster = make_cluster(redis_url=url)
    await cluster.start()
    scenario = Scenario("Redis kill -9 + restart", cluster)
    traffic = Traffic(rate=FAULT_RATE, seconds=stream_seconds(10))
    await scenario.people(traffic)
    after = traffic.seconds * 0.3
    report = await scenario.run(traffic, lambda: killed_and_restarted(scenario, redis, after, 2))
    assert_clean(report)
    assert report.notes["resyncs"] > 0, "the chat nodes never told their clients to resync"


# --- negative controls: the checker must catch a broken variant --------------------------------


async def test_negative_control_ack_before_confirm_is_caught(make_cluster):
    cluster = make_cluster()
    await cluster.start(chat_nodes=2, broken_chat=True)
    scenario = Scenario("NEGATIVE ack before confirm", cluster)
    traffic = Traffic(rate=FAULT_RATE, seconds=stream_seconds(6))

    async def fault() -> None:
        await asyncio.sleep(traffic.seconds * 0.5)
        await cluster.chats[0].kill9()
        scenario.note("kill -9 chat1 (it had acked messages it had not published yet)")

    await scenario.people(traffic)
    report = await scenario.run(traffic, fault)
    record(report)
    assert report.lost_acked_unstored > 0 and report.lost > 0, report


async def test_negative_control_live_push_only_client_is_caught(make_cluster, supervisor):
    redis, url = own_redis(supervisor)
    await redis.start()
    cluster = make_cluster(redis_url=url)
    await cluster.start()
    scenario = Scenario("NEGATIVE live push only", cluster)
    # Long enough after Redis is back for the doorbell to resubscribe and push again, which is
    # what shows the holes: its jittered backoff can wait 3-6 s after a 2 s outage, and with a
    # 6 s stream the loss was all at the tail (lost > 0, holes 0) in about one run of five.
    traffic = Traffic(rate=FAULT_RATE, seconds=stream_seconds(12))
    await scenario.people(traffic, gap_fill=False)
    after = traffic.seconds * 0.2
    report = await scenario.run(traffic, lambda: killed_and_restarted(scenario, redis, after, 2))
    record(report)
    assert report.lost > 0 and report.holes > 0, report
    assert report.lost_acked_unstored == 0, "the server side was not broken in this control"
