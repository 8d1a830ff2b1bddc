"""The auth service's relational store: accounts, refresh-token families, devices and keys.

One implementation over SQLAlchemy Core serves MariaDB and SQLite alike; the contract suite
(tests/contracts/test_auth_store.py) runs it against both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.stores.relational.schema import (
    devices,
    one_time_keys,
    refresh_tokens,
    token_families,
    users,
)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Device:
    user_id: str
    device_id: str
    display_name: str
    ed25519: str
    curve25519: str
    signature: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OneTimeKey:
    key_id: str
    public_key: str
    signature: str
    is_fallback: bool


@dataclass(frozen=True, slots=True)
class Family:
    id: str
    user_id: str
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyUpload:
    clashes: list[str]
    """Key ids already used with another key; nothing was stored when this is not empty."""
    stored: int


class RefreshOutcome(Enum):
    OK = "ok"
    REUSED = "reused"
    UNKNOWN = "unknown"


MAX_CLAIM_RETRIES = 20


class AuthStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- accounts ----------------------------------------------------------------------------
    async def create_user(self, user: User) -> bool:
        """False if the id is taken."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(users).values(
                        id=user.id,
                        email=user.email,
                        password_hash=user.password_hash,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def get_user(self, user_id: str) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return None if row is None else User(**row._mapping)

    async def existing_users(self, user_ids: Iterable[str]) -> set[str]:
        ids = list(user_ids)
        if not ids:
            return set()
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(users.c.id).where(users.c.id.in_(ids)))
        return {r.id for r in rows}

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def delete_user(
        self,
        user_id: str,
        now: datetime,
        before_commit: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> list[str]:
        """Remove the account with its devices, keys and room memberships (cascade), and
        revoke every session of it; return the revoked session ids (empty if there was no
        such account). ``before_commit`` gets them inside the transaction, so the sessions
        can be ended before the memberships are gone.

        The revoked sessions stay until ``purge_families`` so that their access tokens can
        be denied until they expire, even across a restart of the embedded mode."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(users).where(users.c.id == user_id))
            if result.rowcount != 1:
                return []
            families = list(
                await conn.scalars(
                    select(token_families.c.id).where(
                        token_families.c.user_id == user_id, token_families.c.revoked_at.is_(None)
                    )
                )
            )
            await conn.execute(
                update(token_families)
                .where(token_families.c.user_id == user_id, token_families.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="account_deleted")
            )
            if before_commit is not None:
                await before_commit(families)
        return families

    # --- refresh-token families --------------------------------------------------------------
    async def create_family(
        self, family_id: str, user_id: str, token_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(token_families).values(
                    id=family_id, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=token_hash, family_id=family_id, created_at=now
                )
            )

    async def rotate_refresh(
        self, token_hash: str, new_hash: str, now: datetime
    ) -> tuple[RefreshOutcome, Family | None]:
        """Spend ``token_hash`` once and store its successor, atomically.

        A token that was already spent is a replay: the caller revokes its whole family.
        """
        async with self._engine.begin() as conn:
            spent = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None)
                )
                .values(used_at=now)
            )
            row = (
                await conn.execute(
                    select(token_families)
                    .join(refresh_tokens, refresh_tokens.c.family_id == token_families.c.id)
                    .where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
            if row is None:
                return RefreshOutcome.UNKNOWN, None
            family = Family(row.id, row.user_id, row.expires_at, row.revoked_at)
            if spent.rowcount != 1:
                return RefreshOutcome.REUSED, family
            if family.revoked_at is None and family.expires_at > now:
                await conn.execute(
                    insert(refresh_tokens).values(
                        token_hash=new_hash, family_id=family.id, created_at=now
                    )
                )
            return RefreshOutcome.OK, family

    async def revoke_family(self, family_id: str, reason: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(token_families)
                .where(token_families.c.id == family_id, token_families.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )

    async def get_family(self, family_id: str) -> Family | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(token_families).where(token_families.c.id == family_id))
            ).first()
        return None if row is None else Family(row.id, row.user_id, row.expires_at, row.revoked_at)

    async def revoked_since(self, since: datetime) -> list[str]:
        """Sessions revoked at or after ``since`` (their access tokens may still be live)."""
        async with self._engine.connect() as conn:
            return list(
                await conn.scalars(
                    select(token_families.c.id).where(token_families.c.revoked_at >= since)
                )
            )

    async def purge_families(self, now: datetime, revoked_before: datetime) -> int:
        """Delete sessions that expired, or were revoked before ``revoked_before`` (by then
        every access token they issued has expired too)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(token_families).where(
                    (token_families.c.expires_at < now)
                    | (token_families.c.revoked_at < revoked_before)
                )
            )
        return result.rowcount

    # --- devices -----------------------------------------------------------------------------
    async def add_device(self, device: Device) -> bool:
        """False if the user already has a device with this id."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(devices).values(_asdict(device)))
        except IntegrityError:
            return False
        return True

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(devices).where(
                        devices.c.user_id == user_id, devices.c.device_id == device_id
                    )
                )
            ).first()
        return None if row is None else Device(**row._mapping)

    async def devices_of(self, user_ids: Sequence[str]) -> list[Device]:
        if not user_ids:
            return []
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(devices)
                .where(devices.c.user_id.in_(list(user_ids)))
                .order_by(devices.c.user_id, devices.c.created_at)
            )
        return [Device(**r._mapping) for r in rows]

    async def delete_device(self, user_id: str, device_id: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(devices).where(
                    devices.c.user_id == user_id, devices.c.device_id == device_id
                )
            )
        return result.rowcount == 1

    # --- one-time and fallback keys ----------------------------------------------------------
    async def add_keys(
        self, user_id: str, device_id: str, keys: Sequence[OneTimeKey], now: datetime
    ) -> KeyUpload:
        """Store new keys. A key id already known with another key (or kind) is a clash and
        nothing is stored; re-sending a known key, even one already claimed, stores nothing
        (so a retried upload can never hand a key out twice). A new fallback key replaces
        the old one."""
        async with self._engine.begin() as conn:
            ids = [k.key_id for k in keys]
            existing = {
                r.key_id: (r.public_key, r.is_fallback)
                for r in await conn.execute(
                    select(
                        one_time_keys.c.key_id,
                        one_time_keys.c.public_key,
                        one_time_keys.c.is_fallback,
                    ).where(
                        one_time_keys.c.user_id == user_id,
                        one_time_keys.c.device_id == device_id,
                        one_time_keys.c.key_id.in_(ids),
                    )
                )
            }
            clashes = [
                k.key_id
                for k in keys
                if k.key_id in existing and existing[k.key_id] != (k.public_key, k.is_fallback)
            ]
            if clashes:
                return KeyUpload(clashes=clashes, stored=0)
            fresh = [k for k in keys if k.key_id not in existing]
            if any(k.is_fallback for k in fresh):
                await conn.execute(
                    delete(one_time_keys).where(
                        one_time_keys.c.user_id == user_id,
                        one_time_keys.c.device_id == device_id,
                        one_time_keys.c.is_fallback.is_(True),
                    )
                )
            if fresh:
                await conn.execute(
                    insert(one_time_keys),
                    [
                        {
                            "user_id": user_id,
                            "device_id": device_id,
                            "key_id": k.key_id,
                            "public_key": k.public_key,
                            "signature": k.signature,
                            "is_fallback": k.is_fallback,
                            "created_at": now,
                        }
                        for k in fresh
                    ],
                )
        return KeyUpload(clashes=[], stored=len(fresh))

    async def count_one_time_keys(self, user_id: str, device_id: str) -> int:
        """Unclaimed one-time keys left for the device."""
        async with self._engine.connect() as conn:
            return int(
                await conn.scalar(
                    select(func.count()).where(
                        one_time_keys.c.user_id == user_id,
                        one_time_keys.c.device_id == device_id,
                        one_time_keys.c.is_fallback.is_(False),
                        one_time_keys.c.claimed_at.is_(None),
                    )
                )
                or 0
            )

    async def claim_key(
        self, user_id: str, device_id: str, now: datetime, *, fallback_only: bool = False
    ) -> OneTimeKey | None:
        """Hand out one one-time key, never the same one twice; the fallback key when none
        is left or ``fallback_only`` (it is not consumed); None when there is neither.

        Portable compare-and-set: pick the oldest unclaimed key and mark it claimed only if
        it still is; the caller whose UPDATE changed the row owns the key, a loser picks again.
        """
        for _ in range(0 if fallback_only else MAX_CLAIM_RETRIES):
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(one_time_keys)
                        .where(
                            one_time_keys.c.user_id == user_id,
                            one_time_keys.c.device_id == device_id,
                            one_time_keys.c.is_fallback.is_(False),
                            one_time_keys.c.claimed_at.is_(None),
                        )
                        .order_by(one_time_keys.c.id)
                        .limit(1)
                    )
                ).first()
                if row is None:
                    break
                won = await conn.execute(
                    update(one_time_keys)
                    .where(one_time_keys.c.id == row.id, one_time_keys.c.claimed_at.is_(None))
                    .values(claimed_at=now)
                )
                if won.rowcount == 1:
                    return OneTimeKey(row.key_id, row.public_key, row.signature, False)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(one_time_keys).where(
                        one_time_keys.c.user_id == user_id,
                        one_time_keys.c.device_id == device_id,
                        one_time_keys.c.is_fallback.is_(True),
                    )
                )
            ).first()
        return None if row is None else OneTimeKey(row.key_id, row.public_key, row.signature, True)


def _asdict(device: Device) -> dict[str, object]:
    return {name: getattr(device, name) for name in Device.__slots__}
