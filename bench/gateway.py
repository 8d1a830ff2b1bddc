"""The gateway's fan-out path alone: rings put straight on the doorbell, as the archiver
would ring them, and pushed by the chat nodes to the members' sockets.

This isolates "delivery from the doorbell to sockets" (member lookup, one encode, the
per-connection queues and writes) from sending, queueing and archiving, so it can be set
against the bare aiohttp baseline. The rings are built with the archiver's own
``committed_ring`` before the run's clock starts, stamped with their scheduled send time as
they go out, and published on the cluster's Redis under its key prefix; their seqs are
numbered per room within the run. Cluster mode only: the embedded doorbell is in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from backend.chat.history import commit_channel, committed_ring
from backend.chat.pipeline import DEFAULT_PARTITIONS, partition_of
from backend.stores.documents.port import StoredMessage
from bench.loadgen import Receiver, check, drain, summarise_run
from bench.procs import Usage
from bench.sealchat_targets import REDIS_URL, Cluster
from bench.targets import SEALCHAT_CIPHERTEXT, Client, body

_UNSCHEDULED = 10**15
"""The send time every prepared ring carries until it is sent (16 digits, like the real one)."""


def prepare_rings(
    target: Cluster, clients: list[Client], count: int, first: int
) -> tuple[list[tuple[str, bytes]], dict[str, list[int]]]:
    """Every ring of a run (channel, payload), built before its clock starts: making a
    ``StoredMessage`` and its JSON costs the generator ~11 µs a ring, the archiver's work,
    not the gateway's. Each carries ``_UNSCHEDULED`` where its scheduled send time goes."""
    rings: list[tuple[str, bytes]] = []
    room_msgs: dict[str, list[int]] = defaultdict(list)
    seqs: dict[str, int] = defaultdict(int)
    for k in range(count):
        c = clients[k % len(clients)]
        assert c.user is not None
        n = first + k
        seqs[c.room] += 1
        message = StoredMessage(
            room=c.room,
            seq=seqs[c.room],
            msg_id=f"{n:032x}",
            sender=c.user.id,
            device=c.user.device,
            ts=datetime.now(UTC),
            ciphertext=body(n, _UNSCHEDULED, SEALCHAT_CIPHERTEXT),
        )
        channel = commit_channel(partition_of(c.room, DEFAULT_PARTITIONS))
        rings.append((f"{target.tag}:{channel}", committed_ring(message)))
        room_msgs[c.room].append(n)
    return rings, room_msgs


async def ring_open_loop(rings: list[tuple[str, bytes]], rate: float) -> tuple[float, float]:
    """Publish ``rings`` at ``rate``/s (one pipeline per tick), each stamped with its
    scheduled send time as it goes; the start (µs) and the worst lag (ms)."""
    r = aioredis.Redis.from_url(REDIS_URL)
    unscheduled = b".%d~" % _UNSCHEDULED
    start = time.perf_counter()
    lag = 0.0
    k = 0
    try:
        while k < len(rings):
            now = time.perf_counter()
            due = min(len(rings), int((now - start) * rate) + 1)
            if due > k:
                lag = max(lag, now - (start + (due - 1) / rate))
                pipe = r.pipeline(transaction=False)
                while k < due:
                    channel, payload = rings[k]
                    sent = b".%016d~" % int((start + k / rate) * 1e6)
                    pipe.publish(channel, payload.replace(unscheduled, sent, 1))
                    k += 1
                await pipe.execute()
            await asyncio.sleep(0.0005)
    finally:
        await r.aclose()
    return start * 1e6, lag * 1000


async def gateway_run(
    target: Cluster,
    receiver: Receiver,
    clients: list[Client],
    *,
    rate: float,
    count: int,
    first: int,
    stall: float,
) -> dict[str, Any]:
    receiver.reset()
    for c in clients:
        c.reset()
    sizes: dict[str, int] = defaultdict(int)
    for c in clients:
        sizes[c.room] += 1
    rings, room_msgs = prepare_rings(target, clients, count, first)
    usage = Usage(target.processes(), stores=target.stores())
    usage.start(brokers=True)
    start_us, lag_ms = await ring_open_loop(rings, rate)
    expected = sum(len(ns) * sizes[room] for room, ns in room_msgs.items())
    await drain(receiver, clients, expected, 0, stall)
    await usage.settle()
    used = usage.stop()
    verdict = check(receiver, clients, room_msgs, len(clients))
    return summarise_run(receiver, used, verdict, count, expected, start_us, lag_ms)
