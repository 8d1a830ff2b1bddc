"""Accounts, devices and their keys, refresh-token families.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.stores.relational.types import Identifier, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Identifier(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "devices",
        sa.Column("user_id", Identifier(32), nullable=False),
        sa.Column("device_id", Identifier(32), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("ed25519", sa.String(64), nullable=False),
        sa.Column("curve25519", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", name="pk_devices"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_devices_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "one_time_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", Identifier(32), nullable=False),
        sa.Column("device_id", Identifier(32), nullable=False),
        sa.Column("key_id", Identifier(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("is_fallback", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_one_time_keys"),
        sa.ForeignKeyConstraint(
            ["user_id", "device_id"],
            ["devices.user_id", "devices.device_id"],
            name="fk_one_time_keys_user_id_devices",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "user_id", "device_id", "key_id", name="uq_one_time_keys_user_id_device_id_key_id"
        ),
    )
    op.create_index(
        "ix_one_time_keys_user_id_device_id_is_fallback_claimed_at",
        "one_time_keys",
        ["user_id", "device_id", "is_fallback", "claimed_at"],
    )
    op.create_table(
        "token_families",
        sa.Column("id", Identifier(32), nullable=False),
        sa.Column("user_id", Identifier(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_token_families"),
    )
    op.create_index("ix_token_families_user_id", "token_families", ["user_id"])
    op.create_index("ix_token_families_revoked_at", "token_families", ["revoked_at"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", Identifier(64), nullable=False),
        sa.Column("family_id", Identifier(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["token_families.id"],
            name="fk_refresh_tokens_family_id_token_families",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.drop_table("token_families")
    op.drop_table("one_time_keys")
    op.drop_table("devices")
    op.drop_table("users")
