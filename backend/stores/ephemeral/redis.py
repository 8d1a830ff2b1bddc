"""Redis ephemeral adapters for cluster mode: counters and flags, and the doorbell.

Every key and channel is namespaced by ``prefix``, so several deployments (or test sessions)
can share one Redis without seeing each other.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import NoReturn

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff, NoBackoff

from backend.common.tasks import stop_if_cancelled
from backend.stores.ephemeral.inbox import Inbox, Subscription
from backend.stores.ephemeral.port import Counter, Doorbell, KeyValue, Resync, Ring
from backend.stores.ephemeral.ttl import require_ttl

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 5.0

# INCR, and give the counter its window only when it has none: a later hit never extends
# it. Checking TTL (not count == 1) also repairs a counter that somehow lost its expiry.
# A script rather than EXPIRE ... NX, which needs Redis 7.
_INCR_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

# Any of these means the connection is gone (or as good as gone); reconnecting may help.
_CONNECTION_LOST = (redis_errors.ConnectionError, redis_errors.TimeoutError, TimeoutError, OSError)
_LIVENESS_PING = "sealchat-doorbell-liveness"


def command_client(url: str, *, max_connections: int = 50, client_name: str | None = None) -> Redis:
    """A client for short commands: a bounded pool, timeouts, stale connections re-checked."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=COMMAND_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        client_name=client_name,
    )
    return Redis.from_pool(pool)


class CommandAdapter:
    """An adapter on short commands. Given a URL it opens (and on ``close`` closes) its own
    client; given a client it borrows it, and the caller closes it."""

    def __init__(self, client_or_url: Redis | str, prefix: str) -> None:
        self._owns_client = isinstance(client_or_url, str)
        self._client = (
            command_client(client_or_url) if isinstance(client_or_url, str) else client_or_url
        )
        self._prefix = prefix

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class RedisKeyValue(CommandAdapter, KeyValue):
    """Expiring counters and flags in Redis."""

    def __init__(self, client_or_url: Redis | str, prefix: str) -> None:
        super().__init__(client_or_url, prefix)
        self._incr_in_window = self._client.register_script(_INCR_IN_WINDOW)

    async def incr(self, key: str, ttl_seconds: int) -> int:
        require_ttl(ttl_seconds)
        return int(await self._incr_in_window(keys=[self._prefix + key], args=[ttl_seconds]))

    async def counter(self, key: str) -> Counter:
        name = self._prefix + key
        async with self._client.pipeline(transaction=True) as pipe:  # one MULTI/EXEC
            pipe.get(name)
            pipe.pttl(name)
            value, millis = await pipe.execute()
        if value is None:
            return Counter(0, 0)
        # PTTL is -1 for a key without an expiry: reported as no time left (see Counter).
        return Counter(int(value), max(0, math.ceil(int(millis) / 1000)))

    async def set_flag(self, key: str, ttl_seconds: int) -> None:
        require_ttl(ttl_seconds)
        await self._client.set(self._prefix + key, 1, ex=ttl_seconds)

    async def has_flag(self, key: str) -> bool:
        return bool(await self._client.exists(self._prefix + key))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._client.delete(*(self._prefix + key for key in keys))


@dataclass
class _Listener:
    """One subscriber's state across reconnections."""

    names: tuple[str, ...]  # prefixed channel names
    inbox: Inbox
    resync_reason: str = "subscribed"  # what to tell the subscriber once (re)subscribed
    failures: int = 0  # consecutive failed attempts, for the backoff


class RedisDoorbell(Doorbell):
    """PUBLISH / SUBSCRIBE with one connection per subscription, kept alive by a task.

    Each subscription's task owns its PubSub connection: it subscribes, relays messages
    into the subscriber's bounded inbox, and on any connection loss reconnects with capped,
    jittered exponential backoff and sends ``Resync("reconnected")``. The connections run
    without redis-py's silent retry, so every loss is seen and reported.

    Liveness: redis-py's ``health_check_interval`` only *sends* a PING on a pub/sub
    connection and never notices a missing reply (redis/redis-py#2417), so a half-open
    connection would wait forever. Here the task PINGs after ``health_check_interval``
    seconds of silence and treats another silent interval as a lost connection.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        client_name: str | None = None,
        health_check_interval: float = 15.0,
        queue_size: int = 1000,
        reconnect_backoff: AbstractBackoff | None = None,
    ) -> None:
        self._prefix = prefix
        self._health_check_interval = health_check_interval
        self._queue_size = queue_size
        self._backoff = reconnect_backoff or ExponentialWithJitterBackoff(cap=10.0, base=0.05)
        self._publisher = command_client(url, client_name=client_name)
        self._subscriber = Redis.from_url(
            url,
            protocol=2,  # messages as plain replies: RESP3's push path logs each one
            client_name=client_name,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
        self._pumps: set[asyncio.Task[None]] = set()
        self._closed = False

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("the doorbell is closed")

    async def ring(self, channel: str, payload: bytes) -> None:
        self._require_open()
        await self._publisher.publish(self._prefix + channel, payload)

    async def ring_many(self, rings: Sequence[Ring]) -> None:
        """One pipeline of PUBLISH commands: one round trip for a batch of rings."""
        self._require_open()
        if not rings:
            return
        async with self._publisher.pipeline(transaction=False) as pipe:
            for ring in rings:
                pipe.publish(self._prefix + ring.channel, ring.payload)
            await pipe.execute()

    def subscribe(self, *channels: str, backlog: int | None = None) -> Subscription:
        self._require_open()
        if not channels:
            raise ValueError("subscribe to at least one channel")
        names = tuple(dict.fromkeys(self._prefix + channel for channel in channels))
        inbox = Inbox(backlog or self._queue_size)
        return Subscription(self._listen(names, inbox), inbox)

    async def _listen(
        self, names: tuple[str, ...], inbox: Inbox
    ) -> AsyncGenerator[Ring | Resync, None]:
        if self._closed:  # closed between subscribe() and the first iteration
            return
        listener = _Listener(names, inbox)
        pump = asyncio.create_task(self._pump(listener), name=f"doorbell {names[0]}")
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)
        try:
            while (item := await listener.inbox.get()) is not None:
                yield item
        finally:
            pump.cancel()
            await asyncio.wait({pump})
        failure = None if pump.cancelled() else pump.exception()
        if failure is not None:
            raise failure

    async def _pump(self, listener: _Listener) -> None:
        """Keep ``listener`` connected until cancelled; end its inbox when done."""
        try:
            while True:
                try:
                    await self._session(listener)
                except _CONNECTION_LOST as exc:
                    # redis-py can turn our cancellation into a timeout: stop, do not reconnect.
                    stop_if_cancelled()
                    listener.failures += 1
                    delay = self._backoff.compute(listener.failures)
                    log.warning(
                        "doorbell subscription lost (%s: %s); reconnecting in %.2f s",
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
        finally:
            listener.inbox.end()

    async def _session(self, listener: _Listener) -> NoReturn:
        """One connection's life: subscribe, announce the Resync, relay until it is lost."""
        pubsub = self._subscriber.pubsub()
        try:
            early = await self._subscribe(pubsub, listener.names)
            stop_if_cancelled()  # redis-py may have swallowed a cancellation while connecting
            listener.inbox.put(Resync(listener.resync_reason))
            listener.resync_reason = "reconnected"
            listener.failures = 0
            for ring in early:
                listener.inbox.put(ring)
            await self._relay(pubsub, listener.inbox)
        finally:
            await pubsub.aclose()

    async def _subscribe(self, pubsub: PubSub, names: tuple[str, ...]) -> list[Ring]:
        """Subscribe and wait until Redis confirms every channel; return rings seen meanwhile.

        Redis answers one SUBSCRIBE with all its confirmations before any message, so the
        list is empty in practice; keeping it costs nothing and never drops a ring.
        """
        pending = set(names)
        early: list[Ring] = []
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await pubsub.subscribe(*names)
            conn = pubsub.connection
            if conn is None:
                raise redis_errors.ConnectionError("the subscription has no connection")
            while pending:
                reply = await conn.read_response(timeout=math.inf)
                stop_if_cancelled()
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"subscribe":
                    pending.discard(reply[1].decode())
                elif (ring := self._ring_of_reply(reply)) is not None:
                    early.append(ring)
        return early

    async def _relay(self, pubsub: PubSub, inbox: Inbox) -> NoReturn:
        """Move messages into ``inbox``; raise once the connection stops answering.

        Reads the subscription's connection directly, without a timeout per read: redis-py's
        ``get_message`` costs ~8-11 µs a message (a timeout context, its retry wrapper, a
        dict per message; on RESP3 also a log record), this ~1.4. Silence is watched by one
        deadline, moved forward at most every half interval: after between half an interval
        and an interval without a word a PING goes out, and a second silent interval counts
        as a lost connection.
        """
        conn = pubsub.connection
        assert conn is not None  # _subscribe has read from it
        loop = asyncio.get_running_loop()
        interval = self._health_check_interval
        task = asyncio.current_task()
        assert task is not None
        awaiting_pong = False
        while True:
            try:
                async with asyncio.timeout(interval) as quiet:
                    while True:
                        # Not disconnect_on_error: our own deadline may cancel this read,
                        # which leaves the connection (and what it has buffered) intact.
                        reply = await conn.read_response(
                            timeout=math.inf, disconnect_on_error=False
                        )
                        if task.cancelling():  # stop_if_cancelled(), once per message: kept cheap
                            raise asyncio.CancelledError
                        awaiting_pong = False  # anything at all proves the connection alive
                        if (ring := self._ring_of_reply(reply)) is not None:
                            inbox.put(ring)
                        if (deadline := quiet.when()) is not None and (
                            deadline - loop.time() < interval / 2
                        ):
                            quiet.reschedule(loop.time() + interval)
            except TimeoutError:
                if task.cancelling():
                    raise
                if awaiting_pong:
                    raise TimeoutError(f"no reply to PING within {interval} s") from None
                await pubsub.ping(_LIVENESS_PING)
                awaiting_pong = True

    def _ring_of_reply(self, reply: object) -> Ring | None:
        """A ``message`` push of the subscription connection (RESP2) as a ring; None for
        anything else (a ``pong``, a subscribe confirmation)."""
        if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            _, channel, data = reply
            return Ring(channel.decode().removeprefix(self._prefix), data)
        return None

    async def subscriber_count(self, channel: str) -> int:
        """Live subscriptions to ``channel`` across every process sharing this Redis."""
        [(_, count)] = await self._publisher.pubsub_numsub(self._prefix + channel)
        return int(count)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pumps = list(self._pumps)
        for pump in pumps:
            pump.cancel()
        if pumps:
            await asyncio.wait(pumps)
        await self._publisher.aclose()
        await self._subscriber.aclose()


def open_redis(
    url: str, prefix: str, *, client_name: str | None = None
) -> tuple[RedisKeyValue, RedisDoorbell]:
    """Both Redis adapters for one deployment; close each when done.

    They do not share a pool: subscriptions need connections without redis-py's retry
    (the doorbell reports each loss itself), and a shared command pool would leave neither
    adapter owning it, which makes a clean shutdown order-dependent.
    """
    return RedisKeyValue(url, prefix), RedisDoorbell(url, prefix, client_name=client_name)
