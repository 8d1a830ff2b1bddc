"""People, rooms and traffic for one fault test, and the settle-then-check at its end.

``Scenario.people`` signs users up through the auth process, registers a device for each,
makes them friends and members of group rooms through a chat node's REST API, and opens one
``FaultClient`` per device. ``Scenario.run`` streams messages at a fixed rate, runs the
fault next to the stream, waits for the dust to settle (bounded) and checks.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pymongo

from tests.auth.device_keys import TestDevice
from tests.fault.checker import Report, check, read_store
from tests.fault.client import Backoff, FaultClient, Ledger
from tests.fault.cluster import Cluster
from tests.fault.procs import Child, wait_for

PASSWORD = "correct horse battery staple"
QUIET_SECONDS = 10.0
"""A settle phase also ends when its progress counter did not move for this long."""
SETTLE_SECONDS = 90.0
"""After the stream: how long acks, archiving and delivery may take to complete."""


def stream_seconds(default: float) -> float:
    """Length of a test's stream: ``SEALCHAT_FAULT_SECONDS`` scales every test's default
    (30 means the defaults as written; 10 makes each a third as long)."""
    scale = float(os.environ.get("SEALCHAT_FAULT_SECONDS", "30")) / 30.0
    return max(3.0, min(default * scale, 120.0))


@dataclass(frozen=True)
class Traffic:
    clients: int = 20
    rooms: int = 4
    rate: float = 200.0
    """Messages per second, all clients together."""
    seconds: float = 30.0

    @property
    def per_client(self) -> int:
        return max(1, round(self.rate * self.seconds / self.clients))


class Rest:
    """JSON calls to one service with one user's token."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str = "") -> None:
        self.http, self.base, self.token = http, base, token

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
            data = await r.json()
            assert r.status == expect, (method, path, r.status, data)
            return data


async def until_done_or_quiet(
    probe: Callable[[], Awaitable[tuple[bool, int]]], cap: float = SETTLE_SECONDS
) -> bool:
    """Poll ``probe`` (done?, progress) until done, progress stalls, or ``cap`` passes."""
    deadline = time.monotonic() + cap
    last, moved = -1, time.monotonic()
    while True:
        done, progress = await probe()
        if done:
            return True
        now = time.monotonic()
        if progress != last:
            last, moved = progress, now
        if now - moved > QUIET_SECONDS or now > deadline:
            return False
        await asyncio.sleep(0.5)


class Scenario:
    def __init__(self, name: str, cluster: Cluster) -> None:
        self.name = name
        self.cluster = cluster
        self.ledger = Ledger()
        self.clients: list[FaultClient] = []
        self.rooms: list[str] = []
        self.events: list[tuple[float, str]] = []
        self._t0 = time.monotonic()

    def note(self, what: str) -> None:
        """A timestamped line for the test's output: when each fault happened."""
        at = time.monotonic() - self._t0
        self.events.append((at, what))
        print(f"[{self.name} +{at:6.1f}s] {what}", flush=True)

    async def _person(self, http: aiohttp.ClientSession) -> tuple[str, str, str]:
        cluster = self.cluster
        assert cluster.auth is not None
        auth = Rest(http, cluster.url(cluster.auth, "/auth"))
        uid = "f" + uuid.uuid4().hex[:12]
        body = {"id": uid, "passwd": PASSWORD, "email": f"{uid}@example.org"}
        await auth.call("POST", "/signup", body)
        auth.token = (await auth.call("POST", "/login", {"id": uid, "passwd": PASSWORD}))["token"]
        device = TestDevice(uid)
        await auth.call("POST", "/devices", device.registration(), expect=201)
        return uid, auth.token, device.device_id

    async def people(
        self,
        traffic: Traffic,
        *,
        gap_fill: bool = True,
        backoff: Callable[[], Backoff] | None = None,
    ) -> None:
        began = time.monotonic()
        cluster = self.cluster
        chat_base = cluster.url(cluster.chats[0], "/chat")
        urls = cluster.ws_urls()
        async with aiohttp.ClientSession() as http:
            people = await asyncio.gather(*(self._person(http) for _ in range(traffic.clients)))
            for k in range(traffic.rooms):
                members = people[k :: traffic.rooms]
                owner = Rest(http, chat_base, members[0][1])
                room = (await owner.call("POST", "/rooms", {"name": f"fault {k}"}, expect=201))[
                    "id"
                ]
                for uid, token, _device in members[1:]:
                    other = Rest(http, chat_base, token)
                    await owner.call("POST", "/friends/requests", {"user": uid})
                    await other.call("POST", f"/friends/requests/{members[0][0]}/accept")
                    await owner.call("POST", f"/rooms/{room}/invites", {"user": uid}, expect=201)
                    await other.call("POST", f"/rooms/{room}/join")
                self.rooms.append(room)
        for i, (uid, token, device) in enumerate(people):
            # Client i prefers node i mod n, so every node carries some of the clients.
            mine = urls[i % len(urls) :] + urls[: i % len(urls)]
            room = self.rooms[i % traffic.rooms]
            client = FaultClient(
                uid,
                device,
                token,
                room,
                mine,
                self.ledger,
                gap_fill=gap_fill,
                backoff=backoff() if backoff else None,
            )
            self.clients.append(client)
        await asyncio.gather(*(c.start() for c in self.clients))
        took = time.monotonic() - began
        print(f"[{self.name}] {len(self.clients)} people, devices, rooms, sockets in {took:.1f} s")

    async def run(
        self, traffic: Traffic, fault: Callable[[], Awaitable[None]] | None = None
    ) -> Report:
        """Stream, inject ``fault`` alongside, settle, check. The clients are closed after."""
        began = time.monotonic()
        self._t0 = began
        self.note(
            f"streaming {traffic.per_client * traffic.clients} messages at {traffic.rate:g}/s "
            f"from {traffic.clients} clients in {traffic.rooms} rooms"
        )
        rate = traffic.rate / traffic.clients
        streams = [c.send_stream(traffic.per_client, rate) for c in self.clients]
        limit = traffic.seconds * 3 + 120
        timed_out = False
        try:
            # Bounded: a stream that cannot finish (a hang) fails the test, after the check
            # has said what did get through.
            try:
                async with asyncio.timeout(limit):
                    await asyncio.gather(*streams, *([fault()] if fault else []))
            except TimeoutError:
                timed_out = True
                self.note(f"the stream did not finish within {limit:g} s")
            self.note(f"stream sent; {self.ledger.unacked} sends still waiting for their ack")
            await self.settle()
            docs = await asyncio.to_thread(self._read_store)
        finally:
            await asyncio.gather(*(c.close() for c in self.clients))
        report = check(self.name, self.ledger, docs, self.clients)
        report.seconds = round(time.monotonic() - began, 1)
        report.notes["stream_timed_out"] = timed_out
        self.note(f"checked: {report.row()} {report.notes}")
        return report

    async def settle(self) -> None:
        """Wait (bounded) for every ack, for the store to hold them, and for every device to
        show its room's stored messages. A phase also ends when nothing moved for
        ``QUIET_SECONDS``: whatever is still missing then is the finding."""
        ok = await wait_for(lambda: all(c.settled() for c in self.clients), SETTLE_SECONDS)
        self.note(f"acks settled: {ok}")
        accepted = self.ledger.accepted

        async def stored() -> tuple[bool, int]:
            ids = await asyncio.to_thread(self._stored_ids)
            return accepted <= ids, len(ids)

        ok = await until_done_or_quiet(stored)
        self.note(f"store holds the {len(accepted)} acked: {ok}")
        by_room = await asyncio.to_thread(self._stored_by_room)

        async def shown() -> tuple[bool, int]:
            done = all(len(c.shown) >= by_room.get(c.room, 0) for c in self.clients)
            return done, sum(len(c.shown) for c in self.clients)

        ok = await until_done_or_quiet(shown)
        self.note(f"devices caught up: {ok}")

    def _mongo(self) -> pymongo.MongoClient[dict[str, Any]]:
        return pymongo.MongoClient(self.cluster.stores.mongo_url)

    def _stored_ids(self) -> set[str]:
        client = self._mongo()
        try:
            coll = client[self.cluster.stores.mongo_database]["messages"]
            found = coll.find({"room": {"$in": self.rooms}}, {"_id": 0, "msg_id": 1})
            return {doc["msg_id"] for doc in found}
        finally:
            client.close()

    def _stored_by_room(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for doc in self._read_store():
            counts[doc["room"]] = counts.get(doc["room"], 0) + 1
        return counts

    def _read_store(self) -> list[dict[str, Any]]:
        stores = self.cluster.stores
        return read_store(stores.mongo_url, stores.mongo_database, self.rooms)


def assert_clean(report: Report) -> None:
    """Nothing acked is lost or repeated, seq has no holes, nothing foreign shows up."""
    from tests.fault.conftest import record

    record(report)
    assert not report.notes["client_failures"], "a test client broke; the run proves nothing"
    assert not report.notes["stream_timed_out"], "the stream did not finish in time"
    assert report.sent > 0 and report.accepted == report.sent, report
    assert report.archived == report.sent, report
    assert report.delivered == report.expected_deliveries, report
    assert (report.lost, report.duplicated, report.holes, report.unexpected) == (0, 0, 0, 0), report


async def killed_and_restarted(scenario: Scenario, child: Child, after: float, down: float) -> None:
    await asyncio.sleep(after)
    await child.kill9()
    scenario.note(f"kill -9 {child.name} (pid {child.proc.pid if child.proc else '?'})")
    await asyncio.sleep(down)
    took = await child.start()
    scenario.note(f"{child.name} restarted; ready after {took:.1f} s")
