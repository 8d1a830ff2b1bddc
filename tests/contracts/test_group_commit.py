"""The embedded queue's group commit: rows of one statement go to SQLite together, in
submission order with the operations around them, and one bad row fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.stores.queue._group_commit import GroupCommit, Row
from backend.stores.queue.port import QueueUnavailable
from backend.stores.relational.engine import open_engine

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
)
ADD = insert(items)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = open_engine("sqlite+aiosqlite:///" + str(tmp_path / "items.sqlite3"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def executions(engine: AsyncEngine) -> list[tuple[str, bool]]:
    """Every statement the engine runs, with whether it was an ``executemany``."""
    seen: list[tuple[str, bool]] = []

    def note(_conn: Any, _cursor: Any, sql: str, _params: Any, _ctx: Any, many: bool) -> None:
        seen.append((sql.split()[0], many))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    return seen


async def names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list(await conn.scalars(select(items.c.name).order_by(items.c.pk)))


async def test_rows_of_one_statement_are_written_with_one_executemany(engine) -> None:
    committed: list[set[str]] = []
    written: list[list[Row]] = []

    async def before_commit(_conn: AsyncConnection, rows: list[Row]) -> None:
        written.append(list(rows))

    writer = GroupCommit(engine, committed.append, before_commit=before_commit)
    seen = executions(engine)
    futures = [writer.submit_row(ADD, {"name": f"n{i}"}, touches=("q", None)) for i in range(50)]
    async with asyncio.timeout(10):
        assert await asyncio.gather(*futures) == [None] * 50
    assert await names(engine) == [f"n{i}" for i in range(50)]
    assert seen.count(("INSERT", True)) == 1  # one trip for all fifty
    assert [params["name"] for _, params in written[0]] == [f"n{i}" for i in range(50)]
    assert committed == [{"q"}]


async def test_operations_between_rows_see_the_rows_before_them(engine) -> None:
    writer = GroupCommit(engine, lambda _touched: None)

    async def count(conn: AsyncConnection) -> int:
        return int(await conn.scalar(select(func.count()).select_from(items)) or 0)

    async with asyncio.timeout(10):
        first = [writer.submit_row(ADD, {"name": f"a{i}"}) for i in range(3)]
        middle = writer.submit(count)
        last = [writer.submit_row(ADD, {"name": f"b{i}"}) for i in range(2)]
        after = writer.submit(count)
        await asyncio.gather(*first, *last)
        assert (await middle, await after) == (3, 5)
    assert await names(engine) == ["a0", "a1", "a2", "b0", "b1"]


async def test_a_bad_row_fails_alone_and_its_neighbours_are_written(engine) -> None:
    writer = GroupCommit(engine, lambda _touched: None)
    async with asyncio.timeout(10):
        futures = [writer.submit_row(ADD, {"name": n}) for n in ("x", "y", "x", "z")]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], QueueUnavailable)  # the second "x" breaks the unique key
    assert await names(engine) == ["x", "y", "z"]
