"""The presence book in Redis: one sorted set per user, ``presence:<user>``, whose members are
the chat nodes holding a connection of that user, each scored with the claim's deadline.

Every operation is one script, timed by the Redis server's clock (``TIME``), so the nodes'
clocks never have to agree and "was anyone else holding a claim" is answered atomically with
making or dropping one. The key itself expires with its longest claim, so users who left
leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from itertools import islice

from redis.asyncio import Redis

from backend.stores.ephemeral.port import PresenceBook
from backend.stores.ephemeral.redis import CommandAdapter
from backend.stores.ephemeral.ttl import require_ttl

#: Keys per script call when renewing or asking about many users at once.
CHUNK = 500

# Scripts read the server's clock; effects replication (the default from Redis 7, to be
# asked for before) makes that allowed before a write.
_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_ARRIVE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local before = redis.call('ZCARD', KEYS[1])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
if before == 0 then return 1 end
return 0
"""
)

_DEPART = (
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0
"""
)

_RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, now + ttl, ARGV[1])
    if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
return 0
"""
)

_ONLINE = (
    _NOW
    + """
local live = {}
for i, key in ipairs(KEYS) do
    live[i] = redis.call('ZCOUNT', key, '(' .. now, '+inf')
end
return live
"""
)


def _chunks(items: Collection[str]) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


class RedisPresenceBook(CommandAdapter, PresenceBook):
    """Claims in Redis, shared by every chat node on the same prefix."""

    def __init__(self, client_or_url: Redis | str, prefix: str) -> None:
        super().__init__(client_or_url, prefix)
        self._arrive = self._client.register_script(_ARRIVE)
        self._depart = self._client.register_script(_DEPART)
        self._renew = self._client.register_script(_RENEW)
        self._online = self._client.register_script(_ONLINE)

    def _key(self, user: str) -> str:
        return f"{self._prefix}presence:{user}"

    async def arrive(self, user: str, node: str, ttl_seconds: int) -> bool:
        require_ttl(ttl_seconds)
        return bool(await self._arrive(keys=[self._key(user)], args=[node, ttl_seconds]))

    async def depart(self, user: str, node: str) -> bool:
        return bool(await self._depart(keys=[self._key(user)], args=[node]))

    async def renew(self, users: Collection[str], node: str, ttl_seconds: int) -> None:
        require_ttl(ttl_seconds)
        for chunk in _chunks(users):
            await self._renew(keys=[self._key(u) for u in chunk], args=[node, ttl_seconds])

    async def online(self, users: Collection[str]) -> set[str]:
        live: set[str] = set()
        for chunk in _chunks(users):
            counts = await self._online(keys=[self._key(u) for u in chunk])
            live.update(user for user, count in zip(chunk, counts, strict=True) if int(count))
        return live
