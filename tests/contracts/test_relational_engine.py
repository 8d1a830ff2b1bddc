"""The MariaDB engines' round trips: a rested connection is pinged, a busy one is not, and the
read engine gives connections back without a ROLLBACK. Counted with the server's own
per-connection status counters, on one pooled connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pymysql
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.stores.relational import engine as engines

pytestmark = pytest.mark.mariadb


async def _one(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def _counter(engine: AsyncEngine, name: str) -> int:
    """A status counter of the pool's one connection (reading it is one more statement)."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(f"SHOW SESSION STATUS LIKE '{name}'"))).one()
    return int(row[1])


def _kill(url: str, connection_id: int) -> None:
    """End a connection from the server's side, as a restart or ``wait_timeout`` would."""
    parsed = make_url(url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username)
    try:
        with conn.cursor() as cur:
            cur.execute(f"KILL {int(connection_id)}")
    finally:
        conn.close()


@pytest.fixture
async def single(mariadb_url: str) -> AsyncIterator[AsyncEngine]:
    engine = engines.open_engine(mariadb_url, pool_size=1)
    yield engine
    await engine.dispose()


@pytest.fixture
async def reads(mariadb_url: str) -> AsyncIterator[AsyncEngine]:
    engine = engines.open_read_engine(mariadb_url, pool_size=1)
    yield engine
    await engine.dispose()


async def test_the_read_engine_ends_a_read_without_a_rollback(
    single: AsyncEngine, reads: AsyncEngine
) -> None:
    for engine, per_read in ((reads, 0), (single, 1)):
        before = await _counter(engine, "Com_rollback")
        for _ in range(5):
            await _one(engine, "SELECT 1")
        after = await _counter(engine, "Com_rollback")
        # the first _counter's own connection went back in the pool once more
        assert after - before == 6 * per_read, engine


async def test_a_busy_connection_is_not_pinged(reads: AsyncEngine) -> None:
    await _one(reads, "SELECT 1")
    before = await _counter(reads, "Com_admin_commands")
    for _ in range(5):
        await _one(reads, "SELECT 1")
    assert await _counter(reads, "Com_admin_commands") == before


async def test_a_rested_connection_that_died_is_replaced_unseen(
    monkeypatch: pytest.MonkeyPatch, mariadb_url: str
) -> None:
    monkeypatch.setattr(engines, "PING_AFTER_IDLE_SECONDS", 0.2)
    for engine in (
        engines.open_engine(mariadb_url, pool_size=1),
        engines.open_read_engine(mariadb_url, pool_size=1),
    ):
        try:
            first = await _one(engine, "SELECT CONNECTION_ID()")
            _kill(mariadb_url, first)
            await asyncio.sleep(0.3)
            assert await _one(engine, "SELECT CONNECTION_ID()") != first
        finally:
            await engine.dispose()


async def test_a_busy_connection_that_died_fails_once_then_the_pool_is_new(
    reads: AsyncEngine, mariadb_url: str
) -> None:
    first = await _one(reads, "SELECT CONNECTION_ID()")
    _kill(mariadb_url, first)
    with pytest.raises(DBAPIError) as failed:
        await _one(reads, "SELECT 1")
    assert failed.value.connection_invalidated
    assert await _one(reads, "SELECT CONNECTION_ID()") != first


def test_sqlite_has_no_read_engine(tmp_path) -> None:
    with pytest.raises(ValueError, match="open_engine"):
        engines.open_read_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
