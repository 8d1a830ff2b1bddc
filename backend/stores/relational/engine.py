"""Async engines for MariaDB (aiomysql on PyMySQL) and SQLite (aiosqlite).

Two per MariaDB deployment: ``open_engine`` for everything (transactions in READ COMMITTED),
and ``open_read_engine`` for single-statement reads on the hot paths (the fan-out's member
lookup, the member check): autocommit, so a read costs one round trip instead of three (no
pool ping while connections are busy, no ROLLBACK when one goes back to the pool).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

PING_AFTER_IDLE_SECONDS = 2.0
"""A pooled connection that rested this long is pinged before use. A busy one is not: if the
server went away meanwhile, the first statement fails, SQLAlchemy drops every connection the
pool had then, and the caller's retry (or the client's resend) gets a new one."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Cascades need foreign keys on; WAL lets readers run beside the single writer;
    # FULL makes a committed transaction survive a power cut, which "acked ⇒ durable" needs.
    for pragma in (
        "PRAGMA foreign_keys=ON",
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA busy_timeout=10000",
    ):
        cur.execute(pragma)
    cur.close()


def _ping_when_idle(engine: AsyncEngine, idle: float) -> None:
    """``pool_pre_ping``, but only for connections that rested ``idle`` seconds: under load
    the ping was a third of every read's round trips."""
    sync = engine.sync_engine

    @event.listens_for(sync, "checkin")
    def _rested_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.get("checked_in")
        if rested is None or time.monotonic() - rested < idle:
            return  # just connected, or in use a moment ago
        try:
            sync.dialect.do_ping(dbapi_conn)
        except Exception as error:
            # The pool discards this connection and checks out another (SQLAlchemy's
            # documented pessimistic disconnect handling).
            raise exc.DisconnectionError() from error


def _mariadb(url: str, pool_size: int, **options: Any) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=3600,
        connect_args={"charset": "utf8mb4"},
        **options,
    )
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def open_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine for ``url`` with the settings each backend needs to behave."""
    if is_sqlite(url):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return _mariadb(url, pool_size, isolation_level="READ COMMITTED")


def open_read_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """A MariaDB engine for single-statement reads only: each statement commits on its own
    (a transaction here would not be one), and a connection goes back to the pool without
    a ROLLBACK. SQLite has no round trips to save: use ``open_engine``'s engine there."""
    if is_sqlite(url):
        raise ValueError("SQLite reads go through open_engine's engine")
    return _mariadb(url, pool_size, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
