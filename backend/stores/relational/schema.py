"""The relational schema (SQLAlchemy Core). Changes here need an Alembic migration too;
``tests/contracts/test_relational_schema.py`` fails when the two disagree."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

from backend.stores.relational.types import Identifier, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Identifier(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("user_id", Identifier(32), primary_key=True),
    Column("device_id", Identifier(32), primary_key=True),
    Column("display_name", String(64), nullable=False),
    # Public identity keys, unpadded base64 as vodozemac prints them.
    Column("ed25519", String(64), nullable=False),
    Column("curve25519", String(64), nullable=False),
    # The device's Ed25519 signature over its canonical device record.
    Column("signature", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
)

one_time_keys = Table(
    "one_time_keys",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("user_id", Identifier(32), nullable=False),
    Column("device_id", Identifier(32), nullable=False),
    Column("key_id", Identifier(64), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    # A fallback key is handed out when no one-time key is left, and is not consumed.
    Column("is_fallback", Boolean(), nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Claimed keys are kept (marked) so a re-upload of the same key cannot hand it out again.
    Column("claimed_at", UTCDateTime(), nullable=True),
    ForeignKeyConstraint(
        ["user_id", "device_id"], ["devices.user_id", "devices.device_id"], ondelete="CASCADE"
    ),
    UniqueConstraint("user_id", "device_id", "key_id"),
    Index(None, "user_id", "device_id", "is_fallback", "claimed_at"),
)

token_families = Table(
    "token_families",
    metadata,
    Column("id", Identifier(32), primary_key=True),
    # No foreign key to users: a deleted account's sessions stay, revoked, until every access
    # token they issued has expired, so the deny-list can be rebuilt after a restart.
    Column("user_id", Identifier(32), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True, index=True),
    Column("revoked_reason", String(32), nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    # SHA-256 of the opaque token: a leaked table cannot be replayed.
    Column("token_hash", Identifier(64), primary_key=True),
    Column("family_id", Identifier(32), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    ForeignKeyConstraint(["family_id"], ["token_families.id"], ondelete="CASCADE"),
)

# --- the chat service's social graph and rooms --------------------------------------------
# A friendship is stored as two rows (a→b and b→a) so "my friends" is one indexed lookup.
friends = Table(
    "friends",
    metadata,
    Column("user_id", Identifier(32), primary_key=True),
    Column("friend_id", Identifier(32), primary_key=True),
    Column("since", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["friend_id"], ["users.id"], ondelete="CASCADE"),
    Index(None, "friend_id"),
)

friend_requests = Table(
    "friend_requests",
    metadata,
    Column("from_id", Identifier(32), primary_key=True),
    Column("to_id", Identifier(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["from_id"], ["users.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["to_id"], ["users.id"], ondelete="CASCADE"),
    Index(None, "to_id"),
)

blocks = Table(
    "blocks",
    metadata,
    Column("blocker_id", Identifier(32), primary_key=True),
    Column("blocked_id", Identifier(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["blocker_id"], ["users.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["blocked_id"], ["users.id"], ondelete="CASCADE"),
    Index(None, "blocked_id"),
)

rooms = Table(
    "rooms",
    metadata,
    Column("id", Identifier(32), primary_key=True),
    Column("kind", String(8), nullable=False),  # "direct" or "group"
    Column("name", String(64), nullable=True),
    Column("topic", String(256), nullable=True),
    # A room outlives its creator's account: the creator becomes NULL and the room's admins
    # inherit the right to delete it (docs/protocol.md, "Rooms").
    Column("creator_id", Identifier(32), nullable=True),
    # "a|b" (sorted ids) for a 1:1 room, NULL for a group: one 1:1 room per pair.
    Column("direct_key", Identifier(72), nullable=True, unique=True),
    # The last membership-log seq; bumping it also locks the room row for the transaction.
    Column("log_seq", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Deleted rooms keep their id and membership log (ending in "delete"), nothing else.
    Column("deleted_at", UTCDateTime(), nullable=True),
    ForeignKeyConstraint(["creator_id"], ["users.id"], ondelete="SET NULL"),
    Index(None, "creator_id"),
)

room_members = Table(
    "room_members",
    metadata,
    Column("room_id", Identifier(32), primary_key=True),
    Column("user_id", Identifier(32), primary_key=True),
    Column("role", String(8), nullable=False),  # "admin" or "member"
    Column("joined_at", UTCDateTime(), nullable=False),
    # The member's read marker: the highest seq they have read (0: nothing yet).
    Column("read_seq", BigInteger(), nullable=False, server_default=text("0")),
    ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    Index(None, "user_id"),
)

room_invites = Table(
    "room_invites",
    metadata,
    Column("room_id", Identifier(32), primary_key=True),
    Column("user_id", Identifier(32), primary_key=True),
    Column("inviter_id", Identifier(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["inviter_id"], ["users.id"], ondelete="CASCADE"),
    Index(None, "user_id"),
    Index(None, "inviter_id"),
)

membership_log = Table(
    "membership_log",
    metadata,
    Column("room_id", Identifier(32), primary_key=True),
    Column("seq", Integer(), primary_key=True, autoincrement=False),
    Column("action", String(8), nullable=False),
    # No foreign keys to users: the log stays contiguous when an account is deleted.
    Column("actor_id", Identifier(32), nullable=False),
    Column("target_id", Identifier(32), nullable=True),
    Column("role", String(8), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # Filled by the E2EE layer: the authorising device and its signature over the entry.
    Column("device_id", Identifier(32), nullable=True),
    Column("signature", String(128), nullable=True),
    ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="CASCADE"),
)
