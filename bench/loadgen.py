"""The open-loop load generator and the delivery check every run ends with.

Open loop: message ``n`` is due at ``start + n / rate`` and is written when due, whatever
the server has answered so far (a closed loop would slow down with the server and hide its
queueing). The timestamp in each message is the *scheduled* time, so a generator that falls
behind shows up as latency rather than vanishing (no coordinated omission); how far it fell
behind is reported as ``send_lag_ms``.

Receiving costs one callback per frame: find ``~N.T~``, record N in the receiving client's
set (a second copy is a duplicate), and the latency. After the last send the generator waits
until every expected delivery arrived (or nothing arrives for ``stall`` seconds), then checks:
each client got every message sent to its room exactly once and nothing else; for sealchat,
every ``send`` was acked and each client saw its room's seqs contiguous and the same.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from bench import wsclient
from bench.procs import Usage
from bench.targets import Client, Target

NOISY_OTHER_CORES = 0.25
"""CPU (in cores) used by processes that are neither the target nor the generator during a
run above which the run is flagged noisy; so is any steal above ``NOISY_STEAL_PCT``."""
NOISY_STEAL_PCT = 5.0
LOADGEN_BOUND = 0.9
"""Generator CPU (cores) above which the run measured the generator, not the server."""


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[k])


class Receiver:
    """Counts deliveries across all clients of one target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.want_seq = target.kind == "sealchat"
        self.lat: list[int] = []
        self.delivered = 0
        self.last_us = 0

    def reset(self) -> None:
        self.lat, self.delivered, self.last_us = [], 0, 0

    def on_frame(self, conn: wsclient.WsConn, payload: bytes) -> None:
        client: Client = conn.tag  # type: ignore[assignment]
        i = payload.find(b"~")
        if i < 0:
            client.conn = conn  # a server may speak before connect() has returned
            self.target.control(client, payload)
            return
        dot = payload.find(b".", i)
        j = payload.find(b"~", dot)
        n = int(payload[i + 1 : dot])
        now = time.perf_counter_ns() // 1000
        got = client.got
        if n in got:
            client.dupes += 1
        else:
            got.add(n)
        self.lat.append(now - int(payload[dot + 1 : j]))
        self.delivered += 1
        self.last_us = now
        if self.want_seq:
            k = payload.find(b'"seq":')
            client.seqs.append(int(payload[k + 6 : payload.find(b",", k)]))


async def open_clients(
    target: Target, receiver: Receiver, size: int, count: int, *, concurrency: int = 50
) -> list[Client]:
    """``count`` clients (whole rooms of ``size`` only), connected and through the handshake."""
    count -= count % size
    users = getattr(target, "users", None)
    clients = [
        Client(i, target.room_of(i, size), users[i] if users else None) for i in range(count)
    ]
    sem = asyncio.Semaphore(concurrency)

    async def one(c: Client) -> None:
        async with sem:
            await target.open(c, receiver.on_frame)

    await asyncio.gather(*(one(c) for c in clients))
    return clients


def close_clients(clients: list[Client]) -> None:
    for c in clients:
        if c.conn is not None:
            c.conn.abort()


async def send_open_loop(
    target: Target, senders: list[Client], rate: float, count: int, first: int = 0
) -> tuple[float, float, dict[str, list[int]]]:
    """Send ``count`` messages at ``rate``/s round-robin over ``senders``; (start µs, worst
    lag in ms, room → message numbers sent to it)."""
    room_msgs: dict[str, list[int]] = defaultdict(list)
    start = time.perf_counter()
    lag = 0.0
    k = 0
    while k < count:
        now = time.perf_counter()
        due = min(count, int((now - start) * rate) + 1)
        if due > k:
            lag = max(lag, now - (start + (due - 1) / rate))
        while k < due:
            c = senders[k % len(senders)]
            n = first + k
            assert c.conn is not None
            c.conn.send(target.frame(c, n, int((start + k / rate) * 1e6)))
            room_msgs[c.room].append(n)
            k += 1
        await asyncio.sleep(0.0005)
    return start * 1e6, lag * 1000, room_msgs


async def drain(
    receiver: Receiver, clients: list[Client], expected: int, acks: int, stall: float
) -> None:
    """Until every expected delivery (and, for sealchat, every ack) is in, or a stall."""
    last_progress, seen = time.monotonic(), -1
    sealchat = receiver.want_seq
    while True:
        done = receiver.delivered >= expected
        if sealchat:
            done = done and sum(c.acked + c.failed for c in clients) >= acks
        if done:
            return
        progress = receiver.delivered + (sum(c.acked for c in clients) if sealchat else 0)
        if progress != seen:
            seen, last_progress = progress, time.monotonic()
        elif time.monotonic() - last_progress > stall:
            return
        await asyncio.sleep(0.01)


def check(
    receiver: Receiver, clients: list[Client], room_msgs: dict[str, list[int]], senders: int
) -> dict[str, Any]:
    """Missing, duplicated, unexpected deliveries; refused sends; seq holes and mismatches."""
    missing = dupes = unexpected = holes = mismatched = 0
    expected_sets = {room: set(ns) for room, ns in room_msgs.items()}
    room_seqs: dict[str, set[int]] = {}
    for c in clients:
        want = expected_sets.get(c.room, set())
        missing += len(want - c.got)
        unexpected += len(c.got - want)
        dupes += c.dupes
        if receiver.want_seq and c.seqs:
            seqs = set(c.seqs)
            holes += (max(seqs) - min(seqs) + 1) - len(seqs)
            first = room_seqs.setdefault(c.room, seqs)
            mismatched += first != seqs
    failed = sum(c.failed for c in clients)
    resyncs = sum(c.resyncs for c in clients)
    errors = [e.decode(errors="replace") for c in clients for e in c.errors][:3]
    problems = {
        k: v
        for k, v in {
            "missing": missing,
            "duplicates": dupes,
            "unexpected": unexpected,
            "refused_sends": failed,
            "seq_holes": holes,
            "seq_mismatch": mismatched,
        }.items()
        if v
    }
    ok = not problems
    if resyncs:
        problems["resync_frames"] = resyncs
    return {"ok": ok, "problems": problems, "errors": errors}


async def fanout_run(
    target: Target,
    receiver: Receiver,
    clients: list[Client],
    *,
    rate: float,
    count: int,
    first: int,
    stall: float,
) -> dict[str, Any]:
    """One run: ``count`` messages at ``rate``/s into the clients' rooms; the measurements."""
    receiver.reset()
    for c in clients:
        c.reset()
    target.run_tag = first  # type: ignore[attr-defined]
    sizes: dict[str, int] = defaultdict(int)
    for c in clients:
        sizes[c.room] += 1
    usage = Usage(target.processes(), stores=target.stores())
    usage.start(brokers=target.brokers)
    start_us, lag_ms, room_msgs = await send_open_loop(target, clients, rate, count, first)
    expected = sum(len(ns) * sizes[room] for room, ns in room_msgs.items())
    await drain(receiver, clients, expected, count, stall)
    await usage.settle()
    used = usage.stop()
    verdict = check(receiver, clients, room_msgs, len(clients))
    return summarise_run(receiver, used, verdict, count, expected, start_us, lag_ms)


def summarise_run(
    receiver: Receiver,
    used: dict[str, Any],
    verdict: dict[str, Any],
    count: int,
    expected: int,
    start_us: float,
    lag_ms: float,
) -> dict[str, Any]:
    """One run's figures from what was received and what /proc said."""
    lat = sorted(receiver.lat)
    span_s = max((receiver.last_us - start_us) / 1e6, 1e-6)
    n = max(receiver.delivered, 1)
    return {
        "sent": count,
        "expected": expected,
        "delivered": receiver.delivered,
        "delivered_per_s": receiver.delivered / span_s,
        "p50_ms": percentile(lat, 0.50) / 1000,
        "p99_ms": percentile(lat, 0.99) / 1000,
        "max_ms": (lat[-1] / 1000) if lat else float("nan"),
        "cpu_user_us_per_delivery": used["server_user_s"] * 1e6 / n,
        "cpu_sys_us_per_delivery": used["server_sys_s"] * 1e6 / n,
        "broker_cpu_us_per_delivery": used["broker_cpu_s"] * 1e6 / n,
        "cpu_us_per_delivery_by_process": {
            name: seconds * 1e6 / n for name, seconds in used["cpu_s_by_process"].items()
        },
        "send_lag_ms": lag_ms,
        "tail_ms": used["tail_s"] * 1000,
        "tail_cpu_us_per_delivery": used["tail_cpu_s"] * 1e6 / n,
        "settled": used["settled"],
        **{k: used[k] for k in ("rss_bytes", "machine_busy_cores", "steal_pct", "other_cores")},
        "loadgen_cores": used["loadgen_cpu_s"] / used["wall_s"],
        "noisy": used["other_cores"] > NOISY_OTHER_CORES or used["steal_pct"] > NOISY_STEAL_PCT,
        "loadgen_bound": used["loadgen_cpu_s"] / used["wall_s"] > LOADGEN_BOUND,
        **verdict,
    }
