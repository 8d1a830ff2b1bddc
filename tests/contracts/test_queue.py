"""Contract of the durable queue port, run against every adapter (SQLite and RabbitMQ).

Every test owns fresh queue names, and every wait is bounded, so a broken adapter fails a
test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from backend.stores.queue import Delivery, DurableQueue, QueueSpec, QueueUnavailable, Subscription
from backend.stores.queue.embedded import SqliteQueue
from backend.stores.queue.rabbitmq import RabbitQueue

TEST_TIMEOUT = 30.0
RECEIVE_TIMEOUT = 10.0
QUIET_SECONDS = 0.5

Opener = Callable[[], DurableQueue]


@pytest.fixture(params=["sqlite", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def open_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens adapters on one store (the same file or vhost each time); closes them after."""
    opened: list[DurableQueue] = []
    if request.param == "sqlite":
        path = tmp_path / "queue.sqlite3"

        def make() -> DurableQueue:
            return SqliteQueue(path)
    else:
        url = request.getfixturevalue("rabbitmq_url")

        def make() -> DurableQueue:
            return RabbitQueue(url)

    def opener() -> DurableQueue:
        queue = make()
        opened.append(queue)
        return queue

    yield opener
    for queue in opened:
        await queue.close()


@pytest.fixture
def queue(open_queue: Opener) -> DurableQueue:
    return open_queue()


def unique(kind: str = "work") -> str:
    return f"sealchat.test.{kind}.{uuid.uuid4().hex[:12]}"


async def declared(queue: DurableQueue, **settings: object) -> QueueSpec:
    spec = QueueSpec(name=unique(), **settings)  # type: ignore[arg-type]
    await queue.declare(spec)
    return spec


def with_dead_letter(**settings: object) -> dict[str, object]:
    return {"dead_letter": unique("dead"), **settings}


async def receive(deliveries: Subscription) -> Delivery:
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        return await anext(deliveries)


async def assert_quiet(deliveries: Subscription) -> None:
    """Nothing is delivered for a while."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(deliveries), QUIET_SECONDS)


async def test_round_trip_carries_body_message_id_and_headers(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"\x00ciphertext\xff", message_id="m-1", headers={"k": "v"})
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            got = await receive(deliveries)
            assert got.body == b"\x00ciphertext\xff"
            assert got.message_id == "m-1"
            assert dict(got.headers) == {"k": "v"}
            assert got.redelivered is False
            await got.ack()
            await assert_quiet(deliveries)
        async with contextlib.aclosing(queue.consume(spec.name)) as again:
            await assert_quiet(again)  # acked means gone, also for a new consumer


async def test_message_without_id_or_headers(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"bare")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            got = await receive(deliveries)
            assert (got.body, got.message_id, dict(got.headers)) == (b"bare", None, {})
            await got.ack()


async def test_single_consumer_gets_fifo_order(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        bodies = [f"{i:03}".encode() for i in range(30)]
        for body in bodies:
            await queue.publish(spec.name, body)
        async with contextlib.aclosing(queue.consume(spec.name, prefetch=7)) as deliveries:
            got = []
            for _ in bodies:
                delivery = await receive(deliveries)
                got.append(delivery.body)
                await delivery.ack()
        assert got == bodies


async def test_nack_with_requeue_redelivers(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"again", message_id="m-2")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            first = await receive(deliveries)
            assert first.redelivered is False
            await first.nack(requeue=True)
            second = await receive(deliveries)
            assert (second.body, second.message_id, second.redelivered) == (b"again", "m-2", True)
            await second.ack()
            await assert_quiet(deliveries)


async def test_nack_without_requeue_dead_letters(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, **with_dead_letter())
        assert spec.dead_letter is not None
        await queue.publish(spec.name, b"poison", message_id="m-3", headers={"k": "v"})
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            await (await receive(deliveries)).nack(requeue=False)
            async with contextlib.aclosing(queue.consume(spec.dead_letter)) as dead:
                got = await receive(dead)
                assert (got.body, got.message_id) == (b"poison", "m-3")
                assert got.headers["k"] == "v"
                await got.ack()
            await assert_quiet(deliveries)


async def test_nack_without_requeue_and_no_dead_letter_queue_drops(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"dropped")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            await (await receive(deliveries)).nack(requeue=False)
            await assert_quiet(deliveries)


async def test_exceeding_max_deliveries_dead_letters(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, **with_dead_letter(max_deliveries=3))
        assert spec.dead_letter is not None
        await queue.publish(spec.name, b"keeps failing")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            for attempt in range(3):
                delivery = await receive(deliveries)
                assert (delivery.body, delivery.redelivered) == (b"keeps failing", attempt > 0)
                await delivery.nack(requeue=True)
            async with contextlib.aclosing(queue.consume(spec.dead_letter)) as dead:
                got = await receive(dead)
                assert got.body == b"keeps failing"
                await got.ack()
            await assert_quiet(deliveries)


async def test_max_deliveries_of_one_allows_one_delivery(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, **with_dead_letter(max_deliveries=1))
        assert spec.dead_letter is not None
        await queue.publish(spec.name, b"once")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            await (await receive(deliveries)).nack(requeue=True)
            async with contextlib.aclosing(queue.consume(spec.dead_letter)) as dead:
                assert (await receive(dead)).body == b"once"
            await assert_quiet(deliveries)


async def test_unacked_messages_come_back_when_the_consumer_closes(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"held")
        deliveries = queue.consume(spec.name)
        held = await receive(deliveries)
        await deliveries.aclose()
        await held.ack()  # too late: settling after the consumer closed changes nothing
        async with contextlib.aclosing(queue.consume(spec.name)) as again:
            got = await receive(again)
            assert (got.body, got.redelivered) == (b"held", True)
            await got.ack()
            await assert_quiet(again)


async def test_messages_survive_closing_and_reopening_the_adapter(open_queue: Opener) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        first = open_queue()
        spec = await declared(first)
        await first.publish(spec.name, b"delivered-unacked", message_id="a")
        await first.publish(spec.name, b"never-delivered", message_id="b")
        deliveries = first.consume(spec.name, prefetch=1)
        assert (await receive(deliveries)).message_id == "a"
        await first.close()

        second = open_queue()
        async with contextlib.aclosing(second.consume(spec.name)) as again:
            got = {}
            for _ in range(2):
                delivery = await receive(again)
                got[delivery.body] = delivery.redelivered
                await delivery.ack()
            assert got == {b"delivered-unacked": True, b"never-delivered": False}
            await assert_quiet(again)


async def test_prefetch_limits_unsettled_deliveries(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        for i in range(5):
            await queue.publish(spec.name, str(i).encode())
        async with contextlib.aclosing(queue.consume(spec.name, prefetch=2)) as deliveries:
            first, second = await receive(deliveries), await receive(deliveries)
            assert [first.body, second.body] == [b"0", b"1"]
            await assert_quiet(deliveries)
            await first.ack()
            third = await receive(deliveries)
            assert third.body == b"2"
            await assert_quiet(deliveries)
            await second.nack(requeue=True)  # a nack frees a slot too
            assert (await receive(deliveries)).body == b"1"


async def test_concurrent_publishes_all_arrive_exactly_once(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        bodies = {f"message-{i}".encode() for i in range(500)}
        await asyncio.gather(*(queue.publish(spec.name, body) for body in bodies))
        got: list[bytes] = []
        async with contextlib.aclosing(queue.consume(spec.name, prefetch=100)) as deliveries:
            while len(got) < len(bodies):
                delivery = await receive(deliveries)
                got.append(delivery.body)
                await delivery.ack()
            await assert_quiet(deliveries)
        assert len(got) == len(bodies)
        assert set(got) == bodies


async def eventually(read: Callable[[], Awaitable[int]], want: int) -> None:
    """Poll ``read`` until it gives ``want`` (RabbitMQ's counts settle a moment after a publish)."""
    for _ in range(250):
        if (got := await read()) == want:
            return
        await asyncio.sleep(0.02)
    assert got == want


async def test_depth_counts_ready_messages_only(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        assert await queue.depth(spec.name) == 0
        for i in range(3):
            await queue.publish(spec.name, str(i).encode())
        await eventually(lambda: queue.depth(spec.name), 3)
        async with contextlib.aclosing(queue.consume(spec.name, prefetch=1)) as deliveries:
            held = await anext(deliveries)
            await eventually(lambda: queue.depth(spec.name), 2)
            await held.ack()
        await eventually(lambda: queue.depth(spec.name), 2)


async def test_purge_removes_ready_messages(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        for i in range(3):
            await queue.publish(spec.name, str(i).encode())
        assert await queue.purge(spec.name) == 3
        assert await queue.purge(spec.name) == 0
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            await assert_quiet(deliveries)


async def test_max_length_drops_the_oldest_into_the_dead_letter_queue(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, **with_dead_letter(max_length=3))
        assert spec.dead_letter is not None
        for i in range(5):
            await queue.publish(spec.name, str(i).encode())
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            kept = [await receive(deliveries) for _ in range(3)]
            assert [d.body for d in kept] == [b"2", b"3", b"4"]
            await assert_quiet(deliveries)
        async with contextlib.aclosing(queue.consume(spec.dead_letter)) as dead:
            dropped = [await receive(dead) for _ in range(2)]
            assert [d.body for d in dropped] == [b"0", b"1"]


async def test_max_length_holds_for_publishes_committed_together(queue: DurableQueue) -> None:
    # Issued at once: the embedded queue commits them in one transaction and trims once.
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, **with_dead_letter(max_length=3))
        assert spec.dead_letter is not None
        await asyncio.gather(*(queue.publish(spec.name, str(i).encode()) for i in range(6)))
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            kept = [(await receive(deliveries)).body for _ in range(3)]
            await assert_quiet(deliveries)
        async with contextlib.aclosing(queue.consume(spec.dead_letter)) as dead:
            dropped = [(await receive(dead)).body for _ in range(3)]
        assert sorted(kept + dropped) == [str(i).encode() for i in range(6)]


async def test_max_length_without_dead_letter_queue_drops_the_oldest(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, max_length=2)
        for i in range(4):
            await queue.publish(spec.name, str(i).encode())
        assert await queue.purge(spec.name) == 2
        await queue.publish(spec.name, b"fresh")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            assert (await receive(deliveries)).body == b"fresh"


async def test_declaring_the_same_spec_twice_is_harmless(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, **with_dead_letter(max_deliveries=2, max_length=10))
        await queue.publish(spec.name, b"kept")
        await queue.declare(spec)
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            assert (await receive(deliveries)).body == b"kept"


async def test_settling_twice_is_an_error(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"once")
        async with contextlib.aclosing(queue.consume(spec.name)) as deliveries:
            delivery = await receive(deliveries)
            await delivery.ack()
            with pytest.raises(RuntimeError):
                await delivery.nack()
            await assert_quiet(deliveries)


async def test_undeclared_queue_is_unavailable(queue: DurableQueue) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        missing = unique("missing")
        with pytest.raises(QueueUnavailable):
            await queue.publish(missing, b"lost")
        with pytest.raises(QueueUnavailable):
            await queue.purge(missing)
        with pytest.raises(QueueUnavailable):
            async with contextlib.aclosing(queue.consume(missing)) as deliveries:
                await receive(deliveries)
        spec = await declared(queue)  # the adapter is still usable afterwards
        await queue.publish(spec.name, b"fine")
        assert await queue.purge(spec.name) == 1


async def test_closed_adapter_refuses_work_and_ends_consumers(open_queue: Opener) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = open_queue()
        spec = await declared(queue)
        deliveries = queue.consume(spec.name)
        waiting = asyncio.ensure_future(anext(deliveries))
        await asyncio.sleep(0.2)
        await queue.close()
        with pytest.raises(StopAsyncIteration):
            await waiting
        with pytest.raises(QueueUnavailable):
            await queue.publish(spec.name, b"late")


async def test_single_active_consumer_hands_over_in_order_when_it_closes(
    queue: DurableQueue,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, single_active_consumer=True)
        bodies = [f"{i}".encode() for i in range(6)]
        for body in bodies:
            await queue.publish(spec.name, body)
        active = queue.consume(spec.name, prefetch=10)
        try:
            first = await receive(active)  # attached first: this one is the active consumer
            async with contextlib.aclosing(queue.consume(spec.name, prefetch=10)) as standby:
                await assert_quiet(standby)
                held = [first] + [await receive(active) for _ in bodies[1:]]
                assert [d.body for d in held] == bodies
                for delivery in held[:2]:
                    await delivery.ack()
                await queue.publish(spec.name, b"late")
                assert (await receive(active)).body == b"late"
                await assert_quiet(standby)
                await active.aclose()  # hands back 2..5 and "late", unacked
                got = [await receive(standby) for _ in range(5)]
                assert [d.body for d in got] == [*bodies[2:], b"late"]
                assert all(d.redelivered for d in got)
                for delivery in got:
                    await delivery.ack()
                await assert_quiet(standby)
        finally:
            await active.aclose()


async def test_single_active_consumer_hand_over_loses_and_repeats_nothing(
    queue: DurableQueue,
) -> None:
    """The standby gets everything exactly once. Order is kept by the SQLite adapter (see
    below) but not by RabbitMQ 3.x: a closing consumer is cancelled first, which activates the
    standby on the newer messages, and what it held comes back only when its channel is gone."""
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, single_active_consumer=True)
        bodies = [f"{i:03}".encode() for i in range(60)]
        for body in bodies:
            await queue.publish(spec.name, body)
        active = queue.consume(spec.name, prefetch=40)
        try:
            held = [await receive(active) for _ in range(40)]  # 40..59 wait in the queue
            assert [d.body for d in held] == bodies[:40]
            async with contextlib.aclosing(queue.consume(spec.name, prefetch=100)) as standby:
                await assert_quiet(standby)
                await active.aclose()
                got = []
                for _ in bodies:
                    delivery = await receive(standby)
                    got.append(delivery.body)
                    await delivery.ack()
                assert sorted(got) == bodies
                if isinstance(queue, SqliteQueue):
                    assert got == bodies  # what the first one held comes first
                await assert_quiet(standby)
        finally:
            await active.aclose()


async def test_without_single_active_consumer_consumers_share_the_work(
    queue: DurableQueue,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue)
        await queue.publish(spec.name, b"a")
        await queue.publish(spec.name, b"b")
        async with (
            contextlib.aclosing(queue.consume(spec.name, prefetch=1)) as one,
            contextlib.aclosing(queue.consume(spec.name, prefetch=1)) as two,
        ):
            got = {(await receive(one)).body, (await receive(two)).body}
            assert got == {b"a", b"b"}


async def test_single_active_consumer_is_part_of_the_declared_settings(
    queue: DurableQueue,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        spec = await declared(queue, single_active_consumer=True)
        await queue.declare(spec)  # the same spec again: harmless
        with pytest.raises(QueueUnavailable):
            await queue.declare(QueueSpec(name=spec.name))
        await queue.publish(spec.name, b"still usable")
        assert await queue.purge(spec.name) == 1


# --- adapter-specific behaviour behind the same contract --------------------------------------


async def test_sqlite_takes_back_messages_a_crashed_process_left_delivered(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    crashed, restarted = SqliteQueue(path), SqliteQueue(path)
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            spec = await declared(crashed)
            await crashed.publish(spec.name, b"in flight")
            held = crashed.consume(spec.name)
            assert (await receive(held)).body == b"in flight"
            # ``crashed`` never settles nor closes: to the file it is a process that died.
            async with contextlib.aclosing(restarted.consume(spec.name)) as deliveries:
                got = await receive(deliveries)
                assert (got.body, got.redelivered) == (b"in flight", True)
                await got.ack()
    finally:
        await restarted.close()
        await crashed.close()


class _CuttableProxy:
    """A TCP proxy in front of RabbitMQ whose connections a test can cut, like a network drop."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.transport.abort()


@pytest.mark.rabbitmq
async def test_rabbitmq_survives_a_lost_connection(rabbitmq_url: str) -> None:
    parts = urlsplit(rabbitmq_url)
    proxy = _CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    port = await proxy.start()
    queue = RabbitQueue(urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}")))
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            spec = await declared(queue)
            await queue.publish(spec.name, b"before")
            async with contextlib.aclosing(queue.consume(spec.name, prefetch=50)) as deliveries:
                held = await receive(deliveries)
                assert held.body == b"before"

                outcomes: dict[bytes, bool] = {}

                async def publish(body: bytes) -> None:
                    try:
                        await queue.publish(spec.name, body)
                        outcomes[body] = True
                    except QueueUnavailable:
                        outcomes[body] = False

                in_flight = [asyncio.create_task(publish(b"%d" % i)) for i in range(100)]
                await asyncio.sleep(0)  # every publish is on the wire, none confirmed yet
                proxy.cut()
                await asyncio.gather(*in_flight)  # each one confirmed or failed; none hangs
                assert not all(outcomes.values()), "the cut came too late to test anything"

                await queue.publish(spec.name, b"after")  # the next call reconnects
                await held.ack()  # its channel is gone: a no-op, the broker redelivers it

                wanted = {b"before", b"after"} | {b for b, ok in outcomes.items() if ok}
                got: dict[bytes, bool] = {}
                while not wanted <= got.keys():
                    delivery = await receive(deliveries)  # the consumer came back by itself
                    assert delivery.body in wanted | outcomes.keys()
                    got[delivery.body] = delivery.redelivered
                    await delivery.ack()
                assert got[b"before"] is True
    finally:
        await queue.close()
        await proxy.close()
