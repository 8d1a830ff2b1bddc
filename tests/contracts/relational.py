"""Engines for the relational contract suite: SQLite and the real MariaDB, both migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.stores.relational import migrate
from backend.stores.relational.engine import open_engine

BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]


async def fresh_engine(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[AsyncEngine]:
    """An empty database of the requested backend (MariaDB: the scratch database, emptied)."""
    if request.param == "sqlite":
        engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'rel.sqlite3'}")
    else:
        engine = open_engine(request.getfixturevalue("scratch_mariadb_url"))
        await _drop_all(engine)
    try:
        yield engine
    finally:
        if request.param == "mariadb":
            await _drop_all(engine)
        await engine.dispose()


async def _drop_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        tables = [r[0] for r in await conn.execute(text("SHOW TABLES"))]
        await conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for t in tables:
            await conn.execute(text(f"DROP TABLE `{t}`"))
        await conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))


async def migrated(engine: AsyncEngine) -> AsyncEngine:
    await migrate.upgrade(engine)
    return engine
