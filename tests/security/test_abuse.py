"""Connection abuse on loopback: idle unauthenticated sockets, a flooder, a slow reader.

Bounded in count and time; traffic goes only to the in-process test server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import WSMsgType

from backend.protocol.errors import CloseCode
from backend.protocol.frames import Message
from tests.chat.ws_helpers import registry
from tests.security.helpers import new_user, percentile, report

pytestmark = [
    pytest.mark.security,
    pytest.mark.parametrize("make_settings", ["embedded"], indirect=True),
]

IDLE_SOCKETS = 1000
DEADLINE = 3.0


def enough_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_idle_unauthenticated_sockets_are_all_closed_by_the_deadline(stack):
    enough_files(4 * IDLE_SOCKETS + 256)  # both ends of every socket live in this process
    client = await stack(auth_deadline_seconds=DEADLINE)
    url = client.make_url("/chat/ws")
    lags: list[float] = []
    codes: dict[int | None, int] = {}
    gate = asyncio.Semaphore(200)

    async def idle(session: aiohttp.ClientSession) -> None:
        async with gate:  # opening is paced; waiting is not
            ws = await session.ws_connect(url, autoping=True)
        opened = time.monotonic()
        msg = await ws.receive(timeout=DEADLINE + 30)
        lags.append(time.monotonic() - opened - DEADLINE)
        code = ws.close_code if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) else -1
        codes[code] = codes.get(code, 0) + 1
        await ws.close()

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(idle(session) for _ in range(IDLE_SOCKETS)))
    elapsed = time.monotonic() - started
    report(
        "idle sockets",
        sockets=IDLE_SOCKETS,
        deadline_s=DEADLINE,
        closed_4001=codes.get(CloseCode.AUTH_FAILED, 0),
        other=sum(n for c, n in codes.items() if c != CloseCode.AUTH_FAILED),
        max_close_after_deadline_s=f"{max(lags):.2f}",
        earliest_close_before_deadline_s=f"{-min(lags):.2f}",
        total_s=f"{elapsed:.1f}",
    )
    # The lags are seen from the client, whose handshake may finish well after the server
    # started the clock on a loaded machine: figures only, no timed assertion.
    assert codes == {CloseCode.AUTH_FAILED: IDLE_SOCKETS}
    assert len(registry(client)) == 0


async def ping_rtts(peer, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(count):
        started = time.perf_counter()
        reply = await peer.ask("ping")
        out.append(time.perf_counter() - started)
        assert reply["success"]
        await asyncio.sleep(0.065)
    return out


async def test_flooders_and_slow_readers_are_cut_off_and_others_keep_their_latency(stack):
    # Default rate limits (20 frames/s, burst 60): the normal client pings 15 times a second.
    client = await stack(send_timeout_seconds=3.0)
    normal, flooder, slow = [await new_user(client) for _ in range(3)]
    me = await normal.socket()
    baseline = await ping_rtts(me, 60)

    flood_ws = await flooder.socket()
    slow_ws = await slow.socket()
    sent = {"flood": 0, "pushed": 0}

    async def flood() -> int | None:
        # Reads everything (so it is not also a slow reader) and sends far past the rate.
        reader = asyncio.create_task(flood_ws.closed(wait=60))
        try:
            for i in range(2, 100_000):
                if reader.done():
                    break
                await flood_ws.ws.send_str(f'{{"id":{i},"type":"ping"}}')
                sent["flood"] += 1
                if i % 50 == 0:
                    await asyncio.sleep(0)
        except (ConnectionResetError, aiohttp.ClientError):
            pass
        return await reader

    big = Message(
        room="r_" + "A" * 22,
        seq=1,
        msg_id=uuid.uuid4().hex,
        sender=slow.id,
        device="DEVICE01",
        ts=datetime.now(UTC),
        ciphertext="A" * 60_000,
    )

    async def starve_slow_reader() -> None:
        # The fan-out's own call: large room messages for a client that reads nothing.
        gateway = registry(client)
        for _ in range(2000):
            if not gateway.online(slow.id):
                return
            sent["pushed"] += gateway.push([slow.id], big)
            await asyncio.sleep(0.002)

    flood_task = asyncio.create_task(flood())
    starve_task = asyncio.create_task(starve_slow_reader())
    during = await ping_rtts(me, 60)
    flood_code = await asyncio.wait_for(flood_task, 30)
    await asyncio.wait_for(starve_task, 60)
    slow_code = await slow_ws.closed(wait=30)
    after = await ping_rtts(me, 20)
    report(
        "abusers",
        flood_frames_sent=sent["flood"],
        flood_close=flood_code,
        slow_reader_frames_queued=sent["pushed"],
        slow_close=slow_code,
        normal_p50_ms=f"{percentile(baseline, 0.5) * 1000:.1f}",
        normal_p99_ms_without=f"{percentile(baseline, 0.99) * 1000:.1f}",
        normal_p99_ms_with_abusers=f"{percentile(during, 0.99) * 1000:.1f}",
        normal_p99_ms_after=f"{percentile(after, 0.99) * 1000:.1f}",
    )
    assert flood_code == CloseCode.RATE_LIMITED
    assert slow_code == CloseCode.TOO_SLOW
    assert (await me.ask("ping"))["success"]
