"""Alembic environment: sealchat hands it an open connection (see ``migrate.py``)."""

from __future__ import annotations

from alembic import context

from backend.stores.relational.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
