"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from backend.stores.relational import migrate
from backend.stores.relational.schema import metadata
from tests.contracts.relational import BACKENDS, fresh_engine


@pytest.fixture(params=BACKENDS)
async def engine(request, tmp_path):
    async for e in fresh_engine(request, tmp_path):
        yield e


async def test_migrations_match_the_declared_schema(engine):
    with pytest.raises(migrate.SchemaNotMigrated, match="sealchatd migrate"):
        await migrate.require_current(engine)
    before, after = await migrate.upgrade(engine)
    assert (before, after) == (None, migrate.head_revision())
    await migrate.require_current(engine)

    def diff(conn):
        return compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_is_idempotent_and_downgrade_works(engine):
    await migrate.upgrade(engine)
    assert await migrate.upgrade(engine) == (migrate.head_revision(), migrate.head_revision())
    await migrate.downgrade(engine, "base")
    assert await migrate.current_revision(engine) is None
    await migrate.upgrade(engine)
    await migrate.require_current(engine)
