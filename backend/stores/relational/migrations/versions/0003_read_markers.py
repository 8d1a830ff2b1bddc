"""Read markers: how far each member has read each room, kept with the membership.

A member's marker lives and dies with the membership row (leaving a room forgets it), and
only ever moves forward.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("room_members") as batch:
        batch.add_column(
            sa.Column("read_seq", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("room_members") as batch:
        batch.drop_column("read_seq")
