"""pika's frames written one by one or coalesced, side by side (``python -m bench.amqp_frames``).

The project's ``RabbitQueue`` publishes ``--count`` persistent messages with confirms,
``--in-flight`` at a time, to the queue ``bench.amqp-frames`` on the machine's RabbitMQ,
then consumes and acks them all. Each pair of runs alternates pika as it is (the
``_adapter_emit_data`` of pika's own ``AsyncioConnection``: one ``send`` per frame) and
``CoalescingConnection`` (one write per turn of the loop). Reported per run: publishes/s
and consumes/s, this process's CPU per message, and the broker's (``beam.smp``, read from
``/proc`` in clock ticks, so coarse for short runs; on a shared broker it includes whatever
else it does meanwhile). No thresholds: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from pika.adapters.asyncio_connection import AsyncioConnection

from backend.stores.queue import _amqp
from backend.stores.queue.port import QueueSpec
from backend.stores.queue.rabbitmq import RabbitQueue
from bench.procs import TICK, broker_pids, cpu_ticks, own_cpu_seconds
from bench.scenarios import publish_confirmed
from bench.sealchat_targets import RABBITMQ_URL


def _broker_pid() -> int:
    """The local RabbitMQ's Erlang VM."""
    pid = broker_pids().get("rabbitmq")
    if pid is None:
        raise SystemExit("no beam.smp process: is RabbitMQ running on this machine?")
    return pid


def _broker_cpu(pid: int) -> float:
    return sum(cpu_ticks(pid)) / TICK


@dataclass
class Leg:
    per_second: float
    client_us: float
    broker_us: float


async def _run(count: int, in_flight: int, broker: int) -> tuple[Leg, Leg]:
    queue = RabbitQueue(RABBITMQ_URL)
    name = "bench.amqp-frames"
    await queue.declare(QueueSpec(name))
    await queue.purge(name)

    def leg(began: tuple[float, float, float]) -> Leg:
        took = time.perf_counter() - began[2]
        return Leg(
            count / took,
            (own_cpu_seconds() - began[0]) / count * 1e6,
            (_broker_cpu(broker) - began[1]) / count * 1e6,
        )

    try:
        began = (own_cpu_seconds(), _broker_cpu(broker), time.perf_counter())
        await publish_confirmed(queue, name, count, in_flight, size=300)
        published = leg(began)
        began = (own_cpu_seconds(), _broker_cpu(broker), time.perf_counter())
        got = 0
        deliveries = queue.consume(name, prefetch=256)
        async with asyncio.timeout(60):
            async for delivery in deliveries:
                await delivery.ack()
                got += 1
                if got >= count:
                    break
        consumed = leg(began)
        await deliveries.aclose()
        await queue.purge(name)
    finally:
        await queue.close()
    return published, consumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--in-flight", type=int, default=100)
    args = parser.parse_args()
    broker = _broker_pid()
    coalesced = _amqp.CoalescingConnection._adapter_emit_data
    variants = {"pika as it is": AsyncioConnection._adapter_emit_data, "coalesced": coalesced}
    try:
        for _ in range(args.pairs):
            for variant, emit in variants.items():
                _amqp.CoalescingConnection._adapter_emit_data = emit  # type: ignore[method-assign]
                pub, con = asyncio.run(_run(args.count, args.in_flight, broker))
                print(
                    f"{variant:14} publish {pub.per_second:7,.0f}/s client {pub.client_us:5.1f} µs"
                    f" broker {pub.broker_us:5.1f} µs | consume+ack {con.per_second:7,.0f}/s"
                    f" client {con.client_us:5.1f} µs broker {con.broker_us:5.1f} µs",
                    flush=True,
                )
    finally:
        _amqp.CoalescingConnection._adapter_emit_data = coalesced  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
