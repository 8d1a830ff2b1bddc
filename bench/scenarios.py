"""The scenarios besides the fan-out ladder: idle connections, reconnect, the broker legs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from bench import wsclient
from bench.loadgen import Receiver, check, close_clients, drain, open_clients, send_open_loop
from bench.procs import Usage, rss_bytes
from bench.targets import Client, Sealchat, Target

if TYPE_CHECKING:
    from backend.stores.queue.port import DurableQueue

HISTORY_PAGE = 500


async def idle(target: Target, receiver: Receiver, count: int, seconds: float) -> dict[str, Any]:
    """Up to ``count`` idle connections (sealchat: authenticated) on one server process,
    opened for at most ``seconds``: memory per connection and connect rate."""
    pid = target.idle_pid()
    before = rss_bytes(pid)
    sealchat = isinstance(target, Sealchat)  # its sockets are in the users' rooms already
    clients = [Client(i, "" if sealchat else target.room_of(i, 10)) for i in range(count)]
    sem = asyncio.Semaphore(100)
    failures: list[str] = []

    deadline = time.monotonic() + seconds

    async def one(c: Client) -> None:
        async with sem:
            if time.monotonic() > deadline:
                return  # out of time: reported as fewer connections, not as a failure
            try:
                await target.open(c, receiver.on_frame, idle=True)
            except (OSError, TimeoutError, ConnectionError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                c.conn = None

    began = time.monotonic()
    await asyncio.gather(*(one(c) for c in clients))
    took = time.monotonic() - began
    await asyncio.sleep(1.0)
    after = rss_bytes(pid)
    opened = sum(1 for c in clients if c.conn is not None and not c.conn.closed)
    dropped = sum(1 for c in clients if c.conn is not None and c.conn.closed)
    if dropped:
        failures.append(f"{dropped} connections closed by the server while idle")
    close_clients(clients)
    await asyncio.sleep(1.0)
    return {
        "connections": count,
        "open": opened,
        "connect_per_s": opened / took,
        "bytes_per_connection": (after - before) / max(opened, 1),
        "rss_bytes": after,
        "ok": not failures,
        "problems": {"failed_to_open": len(failures)} if failures else {},
        "errors": failures[:3],
    }


async def _request(conn: wsclient.WsConn, frame: dict[str, Any]) -> dict[str, Any]:
    """One request on a raw socket whose frames go to this call until it is answered."""
    fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_frame(_: wsclient.WsConn, payload: bytes) -> None:
        data = json.loads(payload)
        if data.get("type") == "result" and data.get("id") == frame["id"] and not fut.done():
            fut.set_result(data)

    previous, conn.on_frame = conn.on_frame, on_frame
    try:
        conn.send(json.dumps(frame).encode())
        return await asyncio.wait_for(fut, 30)
    finally:
        conn.on_frame = previous


async def catch_up(client: Client, first_seq: int) -> int:
    """Fill ``client``'s room from ``history``, as docs/protocol.md says a client does after
    a reconnect: from its last contiguous seq on. How many messages history supplied."""
    assert client.conn is not None
    have = set(client.seqs)
    last = first_seq - 1
    while last + 1 in have:
        last += 1
    filled = 0
    while True:
        rid, client.next_id = client.next_id, client.next_id + 1
        reply = await _request(
            client.conn,
            {
                "id": rid,
                "type": "history",
                "room": client.room,
                "after": last,
                "limit": HISTORY_PAGE,
            },
        )
        messages = reply["result"]["messages"]
        for m in messages:
            seq = int(m["seq"])
            last = max(last, seq)
            if seq in have:
                continue  # already shown live: a client drops it, it is no duplicate
            ct = m["ciphertext"]
            client.got.add(int(ct[1 : ct.index(".")]))
            client.seqs.append(seq)
            have.add(seq)
            filled += 1
        if len(messages) < HISTORY_PAGE:
            return filled


async def reconnect(
    target: Sealchat, receiver: Receiver, clients_n: int, rate: float, count: int, first: int
) -> dict[str, Any]:
    """Kill 10% of the clients mid-stream (TCP reset, no close frame), reconnect them, let
    them catch up from history; then every client must hold every message exactly once."""
    clients = await open_clients(target, receiver, 10, clients_n)
    killed = [c for c in clients if c.idx % 10 == 9]
    senders = [c for c in clients if c.idx % 10 != 9]
    before: dict[str, int] = {}
    for c in killed:  # each room's last seq before the run: where catching up starts
        assert c.conn is not None
        rid, c.next_id = c.next_id, c.next_id + 1
        reply = await _request(c.conn, {"id": rid, "type": "sync", "rooms": [c.room]})
        before[c.room] = int(reply["result"]["rooms"].get(c.room, 0))
    receiver.reset()
    target.run_tag = first
    usage = Usage(target.processes(), stores=target.stores())
    usage.start(brokers=target.brokers)

    async def chaos() -> None:
        await asyncio.sleep(count / rate * 0.3)
        for c in killed:
            assert c.conn is not None
            c.conn.abort()
        await asyncio.sleep(count / rate * 0.3)
        await asyncio.gather(*(target.open(c, receiver.on_frame) for c in killed))

    chaos_task = asyncio.create_task(chaos())
    _, _, room_msgs = await send_open_loop(target, senders, rate, count, first)
    await chaos_task
    live = [c for c in clients if c not in killed]
    expected_live = sum(len(room_msgs[c.room]) for c in live)
    await drain(receiver, live, expected_live, count, stall=20.0)
    # ``delivered`` counts the killed clients' frames too: wait for the live ones by name.
    last_progress, seen = time.monotonic(), -1
    while time.monotonic() - last_progress < 20.0:
        have = sum(len(c.got) for c in live)
        if have >= expected_live:
            break
        if have != seen:
            seen, last_progress = have, time.monotonic()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    filled = 0
    for c in killed:
        filled += await catch_up(c, before[c.room] + 1)
    used = usage.stop()
    verdict = check(receiver, clients, room_msgs, len(senders))
    close_clients(clients)
    return {
        "sent": count,
        "killed": len(killed),
        "filled_from_history": filled,
        "delivered_live": receiver.delivered,
        "other_cores": used["other_cores"],
        "steal_pct": used["steal_pct"],
        **verdict,
    }


async def redis_leg(url: str, prefix: str, count: int, publishers: int) -> dict[str, Any]:
    """The doorbell alone: one subscriber through the project's ``RedisDoorbell``; rings
    published through its ``ring`` by ``publishers`` concurrent publishers, each awaiting
    its PUBLISH (``publishers == 0``: pipelined PUBLISHes, 200 a round trip, so that the
    subscriber is what is measured). Every ring must arrive once."""
    import redis.asyncio as aioredis

    from backend.stores.ephemeral.port import Ring
    from backend.stores.ephemeral.redis import RedisDoorbell

    bell = RedisDoorbell(url, prefix, queue_size=count + 10)
    got: set[int] = set()
    dupes = resyncs = 0
    first_at = last_at = 0.0
    subscribed = asyncio.Event()

    async def listen() -> None:
        nonlocal dupes, resyncs, first_at, last_at
        stream = bell.subscribe("bench")
        subscribed.set()
        async for item in stream:
            if not isinstance(item, Ring):
                resyncs += 1
                continue
            n = int(item.payload[:12])
            if n in got:
                dupes += 1
            got.add(n)
            last_at = time.perf_counter()
            first_at = first_at or last_at
            if len(got) >= count:
                return

    listener = asyncio.create_task(listen())
    await subscribed.wait()
    for _ in range(200):  # the subscription is made by a task: wait until Redis has it
        if await bell.subscriber_count("bench") >= 1:
            break
        await asyncio.sleep(0.05)
    pad = b"x" * 188

    async def publish(start: int) -> None:
        for n in range(start, count, publishers):
            await bell.ring("bench", b"%012d" % n + pad)

    async def pipelined() -> None:
        raw = aioredis.Redis.from_url(url)
        try:
            for first in range(0, count, 200):
                pipe = raw.pipeline(transaction=False)
                for n in range(first, min(first + 200, count)):
                    pipe.publish(prefix + "bench", b"%012d" % n + pad)
                await pipe.execute()
        finally:
            await raw.aclose()

    began = time.perf_counter()
    if publishers:
        await asyncio.gather(*(publish(i) for i in range(publishers)))
    else:
        await pipelined()
    try:
        await asyncio.wait_for(listener, 30)
    except TimeoutError:
        pass
    await bell.close()
    missing = count - len(got)
    return {
        "messages": count,
        "publishers": publishers or "pipelined",
        "received_per_s": len(got) / max(last_at - began, 1e-6),
        "resyncs": resyncs,  # the first subscription reports one; more mean overflow
        "ok": missing == 0 and dupes == 0,
        "problems": {k: v for k, v in {"missing": missing, "duplicates": dupes}.items() if v},
    }


async def publish_confirmed(
    queue: DurableQueue, name: str, count: int, in_flight: int, *, size: int
) -> float:
    """Publish ``count`` messages of ``size`` bytes to ``name``, each waiting for its
    confirm, ``in_flight`` outstanding at a time; the seconds it took."""
    limit = asyncio.Semaphore(in_flight)
    body = b"y" * size

    async def one(n: int) -> None:
        async with limit:
            await queue.publish(name, body, message_id=f"{n:012d}")

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return time.perf_counter() - began


async def rabbitmq_leg(url: str, count: int, in_flight: int) -> dict[str, Any]:
    """Persistent publishes with confirms through the project's ``RabbitQueue``, with
    ``in_flight`` outstanding at a time; then every message is consumed back once."""
    from backend.stores.queue.port import QueueSpec
    from backend.stores.queue.rabbitmq import RabbitQueue

    queue = RabbitQueue(url)
    name = f"bench.leg.{in_flight}"
    await queue.declare(QueueSpec(name))
    await queue.purge(name)
    took = await publish_confirmed(queue, name, count, in_flight, size=200)
    seen: set[str] = set()
    dupes = 0
    sub = queue.consume(name, prefetch=256)
    try:
        async with asyncio.timeout(60):
            async for delivery in sub:
                mid = delivery.message_id or ""
                dupes += mid in seen
                seen.add(mid)
                await delivery.ack()
                if len(seen) >= count:
                    break
    except TimeoutError:
        pass
    finally:
        await sub.aclose()
        await queue.close()
    missing = count - len(seen)
    return {
        "messages": count,
        "in_flight": in_flight,
        "published_per_s": count / took,
        "ok": missing == 0 and dupes == 0,
        "problems": {k: v for k, v in {"missing": missing, "duplicates": dupes}.items() if v},
    }
