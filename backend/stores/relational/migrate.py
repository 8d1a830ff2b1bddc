"""Apply and check Alembic migrations on an async engine (``sealchatd migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaNotMigrated(Exception):
    """The database schema is behind the code; ``sealchatd migrate`` fixes it."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(conn: Connection, target: str) -> None:
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def _downgrade(conn: Connection, target: str) -> None:
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, target)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``target``; return (revision before, revision after)."""
    async with engine.begin() as conn:
        before = await conn.run_sync(_current)
        await conn.run_sync(_upgrade, target)
        after = await conn.run_sync(_current)
    return before, after


async def downgrade(engine: AsyncEngine, target: str) -> None:
    """Step the schema back to ``target`` (``base``: empty). Drops data: operators only."""
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, target)


async def require_current(engine: AsyncEngine) -> None:
    """Refuse to serve on a schema the code does not match."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotMigrated(
            f"database schema is at revision {current or 'none'}, the code needs {head}: "
            "run `sealchatd migrate` (with the same --config) first"
        )
