"""The chat service's social graph and rooms: friends, requests, blocks, rooms, members,
invites and the per-room membership log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.stores.relational.types import Identifier, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _user_fk(table: str, column: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=f"fk_{table}_{column}_users", ondelete=ondelete
    )


def _pair_table(name: str, first: str, second: str, when: str) -> None:
    """friends, friend_requests and blocks share one shape: two users and a time."""
    op.create_table(
        name,
        sa.Column(first, Identifier(32), nullable=False),
        sa.Column(second, Identifier(32), nullable=False),
        sa.Column(when, UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(first, second, name=f"pk_{name}"),
        _user_fk(name, first),
        _user_fk(name, second),
    )
    op.create_index(f"ix_{name}_{second}", name, [second])


def upgrade() -> None:
    _pair_table("friends", "user_id", "friend_id", "since")
    _pair_table("friend_requests", "from_id", "to_id", "created_at")
    _pair_table("blocks", "blocker_id", "blocked_id", "created_at")
    op.create_table(
        "rooms",
        sa.Column("id", Identifier(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("topic", sa.String(256), nullable=True),
        sa.Column("creator_id", Identifier(32), nullable=True),
        sa.Column("direct_key", Identifier(72), nullable=True),
        sa.Column("log_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rooms"),
        sa.UniqueConstraint("direct_key", name="uq_rooms_direct_key"),
        _user_fk("rooms", "creator_id", ondelete="SET NULL"),
    )
    op.create_index("ix_rooms_creator_id", "rooms", ["creator_id"])
    op.create_table(
        "room_members",
        sa.Column("room_id", Identifier(32), nullable=False),
        sa.Column("user_id", Identifier(32), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "user_id", name="pk_room_members"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name="fk_room_members_room_id_rooms", ondelete="CASCADE"
        ),
        _user_fk("room_members", "user_id"),
    )
    op.create_index("ix_room_members_user_id", "room_members", ["user_id"])
    op.create_table(
        "room_invites",
        sa.Column("room_id", Identifier(32), nullable=False),
        sa.Column("user_id", Identifier(32), nullable=False),
        sa.Column("inviter_id", Identifier(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "user_id", name="pk_room_invites"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name="fk_room_invites_room_id_rooms", ondelete="CASCADE"
        ),
        _user_fk("room_invites", "user_id"),
        _user_fk("room_invites", "inviter_id"),
    )
    op.create_index("ix_room_invites_user_id", "room_invites", ["user_id"])
    op.create_index("ix_room_invites_inviter_id", "room_invites", ["inviter_id"])
    op.create_table(
        "membership_log",
        sa.Column("room_id", Identifier(32), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("actor_id", Identifier(32), nullable=False),
        sa.Column("target_id", Identifier(32), nullable=True),
        sa.Column("role", sa.String(8), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("device_id", Identifier(32), nullable=True),
        sa.Column("signature", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("room_id", "seq", name="pk_membership_log"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name="fk_membership_log_room_id_rooms", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("membership_log")
    op.drop_table("room_invites")
    op.drop_table("room_members")
    op.drop_table("rooms")
    op.drop_table("blocks")
    op.drop_table("friend_requests")
    op.drop_table("friends")
