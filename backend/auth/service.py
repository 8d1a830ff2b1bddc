"""The auth service's behaviour, free of HTTP: accounts, sessions, devices and keys.

Views parse and reply; everything that decides lives here and raises ``ApiError``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from backend.auth import schemas
from backend.auth.passwords import PasswordHasher
from backend.auth.store import AuthStore, Device, OneTimeKey, RefreshOutcome, User
from backend.auth.throttle import LoginThrottle
from backend.common.auth_guard import (
    SESSION_ENDED_CHANNEL,
    deny_jti_key,
    deny_session_key,
    seconds_left,
)
from backend.common.errors import ApiError
from backend.common.events import EventPublisher
from backend.common.settings import AuthSettings
from backend.common.tokens import LEEWAY_SECONDS, AccessClaims, TokenIssuer
from backend.protocol import signing
from backend.protocol.errors import ErrorCode
from backend.stores.ephemeral.port import Doorbell, KeyValue

log = logging.getLogger("sealchat.auth")

BAD_CREDENTIALS = "wrong id or password"
CLAIM_WINDOW_SECONDS = 3600


def hash_refresh(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def device_out(d: Device) -> schemas.DeviceOut:
    return schemas.DeviceOut(
        user_id=d.user_id,
        device_id=d.device_id,
        display_name=d.display_name,
        keys=schemas.IdentityKeys(ed25519=d.ed25519, curve25519=d.curve25519),
        signature=d.signature,
        created_at=d.created_at,
    )


class AuthService:
    def __init__(
        self,
        *,
        store: AuthStore,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        issuer: TokenIssuer,
        kv: KeyValue,
        events: EventPublisher,
        doorbell: Doorbell | None = None,
        settings: AuthSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.throttle = throttle
        self.issuer = issuer
        self.kv = kv
        self.doorbell = doorbell
        self.events = events
        self.settings = settings
        self.clock = clock

    # --- accounts ----------------------------------------------------------------------------
    async def signup(self, body: schemas.SignupIn) -> None:
        if not self.settings.allow_signup:
            raise ApiError(
                ErrorCode.FORBIDDEN, "sign-up is closed on this server: ask its operator"
            )
        user = User(
            id=body.id,
            email=body.email,
            password_hash=await self.hasher.hash(body.passwd),
            created_at=self.clock(),
        )
        if not await self.store.create_user(user):
            raise ApiError(ErrorCode.CONFLICT, f"the id {body.id!r} is taken: choose another")
        self.events.emit("signup", body.id, result="success")

    async def get_user(self, user_id: str) -> schemas.UserOut:
        user = await self.store.get_user(user_id)
        if user is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no user {user_id!r}")
        return schemas.UserOut(id=user.id)

    async def delete_account(
        self, claims: AccessClaims, body: schemas.DeleteAccountIn, address: str
    ) -> None:
        if not body.confirm:
            raise ApiError(
                ErrorCode.INVALID,
                "deleting an account cannot be undone: send confirm: true to go ahead",
            )
        await self._check_password(claims.sub, body.passwd, address, category="account")

        async def end_sessions(sids: list[str]) -> None:
            for sid in sids:
                await self._deny_session(sid)

        # Ended before the commit too: the chat nodes close the sockets before any message
        # committed after the deletion is rung ("membership at push time", member_cache.py),
        # and again after it: their member caches forget the account's rooms.
        await end_sessions(await self.store.delete_user(claims.sub, self.clock(), end_sessions))
        await self._deny(claims)
        self.events.emit("account", claims.sub, action="delete", result="success")

    async def _check_password(
        self, user_id: str, password: str, address: str, *, category: str = "signin"
    ) -> User:
        """The account if the password is right; otherwise throttled, counted and refused the
        same way whether or not the account exists."""
        try:
            await self.throttle.check(user_id, address)
        except ApiError:
            self.events.emit(category, user_id, result="fail", reason=ErrorCode.THROTTLED.value)
            raise
        user = await self.store.get_user(user_id)
        if (
            not await self.hasher.verify(user.password_hash if user else None, password)
            or user is None
        ):
            await self.throttle.failed(user_id, address)
            self.events.emit(
                category, user_id, result="fail", reason=ErrorCode.BAD_CREDENTIALS.value
            )
            raise ApiError(ErrorCode.BAD_CREDENTIALS, BAD_CREDENTIALS)
        await self.throttle.succeeded(user_id, address)
        return user

    # --- sessions ----------------------------------------------------------------------------
    def _role(self, user_id: str) -> str:
        return "admin" if user_id in self.settings.admins else "user"

    def _tokens(self, user_id: str, family_id: str, refresh: str) -> schemas.Tokens:
        role = self._role(user_id)
        audiences = ["auth", "chat"] + (["log"] if role == "admin" else [])
        access, _ = self.issuer.issue(sub=user_id, sid=family_id, role=role, audiences=audiences)
        return schemas.Tokens(
            token=access, refresh_token=refresh, expires_in=self.issuer.ttl_seconds, user=user_id
        )

    async def login(self, body: schemas.LoginIn, address: str) -> schemas.Tokens:
        user = await self._check_password(body.id, body.passwd, address)
        if self.hasher.needs_rehash(user.password_hash):
            await self.store.set_password_hash(user.id, await self.hasher.hash(body.passwd))
        now = self.clock()
        family_id, refresh = secrets.token_hex(16), secrets.token_urlsafe(32)
        await self.store.create_family(
            family_id,
            user.id,
            hash_refresh(refresh),
            now,
            now + timedelta(days=self.settings.refresh_ttl_days),
        )
        self.events.emit("signin", user.id, result="success")
        return self._tokens(user.id, family_id, refresh)

    async def refresh(self, body: schemas.RefreshIn) -> schemas.Tokens:
        now = self.clock()
        new = secrets.token_urlsafe(32)
        outcome, family = await self.store.rotate_refresh(
            hash_refresh(body.refresh_token), hash_refresh(new), now
        )
        if outcome is RefreshOutcome.UNKNOWN or family is None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "refresh token not recognised: log in again")
        if outcome is RefreshOutcome.REUSED and family.revoked_at is not None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "session has ended: log in again")
        if outcome is RefreshOutcome.REUSED:
            # A spent token came back: someone holds a copy. End the whole session.
            await self.store.revoke_family(family.id, "reuse", now)
            await self._deny_session(family.id)
            self.events.emit(
                "refresh", family.user_id, result="fail", reason=ErrorCode.REFRESH_REUSED.value
            )
            raise ApiError(
                ErrorCode.REFRESH_REUSED,
                "refresh token was already used; the session is ended: log in again",
            )
        if family.revoked_at is not None or family.expires_at <= now:
            raise ApiError(ErrorCode.UNAUTHORIZED, "session has ended: log in again")
        self.events.emit("refresh", family.user_id, result="success")
        return self._tokens(family.user_id, family.id, new)

    @property
    def _deny_ttl(self) -> int:
        """How long a denied session can still have a live access token (lifetime + leeway)."""
        return self.issuer.ttl_seconds + LEEWAY_SECONDS

    async def _deny(self, claims: AccessClaims) -> None:
        await self.kv.set_flag(deny_jti_key(claims.jti), seconds_left(claims))
        await self._deny_session(claims.sid)

    async def _deny_session(self, sid: str) -> None:
        """Refuse the session's access tokens from now on, and close its open sockets."""
        await self.kv.set_flag(deny_session_key(sid), self._deny_ttl)
        if self.doorbell is not None:
            try:
                await self.doorbell.ring(SESSION_ENDED_CHANNEL, sid.encode())
            except Exception as exc:
                # The deny-list already refuses the session; the sockets close at their next
                # token check instead of now.
                log.warning("session-ended ring failed", extra={"error": type(exc).__name__})

    async def restore_denials(self) -> int:
        """Re-deny sessions revoked recently (the embedded deny-list lives in memory, so a
        restart must not bring a logged-out token back to life); return how many."""
        since = self.clock() - timedelta(seconds=self._deny_ttl)
        revoked = await self.store.revoked_since(since)
        for sid in revoked:
            await self.kv.set_flag(deny_session_key(sid), self._deny_ttl)
        return len(revoked)

    async def logout(self, claims: AccessClaims) -> None:
        await self.store.revoke_family(claims.sid, "logout", self.clock())
        await self._deny(claims)
        self.events.emit("logout", claims.sub, result="success")

    # --- devices and keys --------------------------------------------------------------------
    async def register_device(
        self, claims: AccessClaims, body: schemas.DeviceIn
    ) -> schemas.DeviceOut:
        payload = signing.device_payload(
            claims.sub, body.device_id, body.keys.ed25519, body.keys.curve25519
        )
        if not signing.verify_signature(body.keys.ed25519, body.signature, payload):
            raise ApiError(
                ErrorCode.BAD_SIGNATURE, "device signature does not verify with its ed25519 key"
            )
        device = Device(
            user_id=claims.sub,
            device_id=body.device_id,
            display_name=body.display_name,
            ed25519=body.keys.ed25519,
            curve25519=body.keys.curve25519,
            signature=body.signature,
            created_at=self.clock(),
        )
        if not await self.store.add_device(device):
            raise ApiError(
                ErrorCode.CONFLICT, f"device {body.device_id!r} exists: pick a new device id"
            )
        self.events.emit("keys", claims.sub, action="device_add", device=body.device_id)
        return device_out(device)

    async def _own_device(self, user_id: str, device_id: str) -> Device:
        device = await self.store.get_device(user_id, device_id)
        if device is None:
            raise ApiError(
                ErrorCode.NOT_FOUND, f"you have no device {device_id!r}: register it first"
            )
        return device

    async def upload_keys(
        self, claims: AccessClaims, body: schemas.KeysUploadIn
    ) -> schemas.KeyCount:
        device = await self._own_device(claims.sub, body.device_id)
        keys = [(kid, k.key, k.signature, False) for kid, k in body.one_time_keys.items()]
        if body.fallback_key is not None:
            fb = body.fallback_key
            if fb.key_id in body.one_time_keys:
                raise ApiError(
                    ErrorCode.INVALID,
                    f"key id {fb.key_id!r} is used twice: give the fallback key its own id",
                )
            keys.append((fb.key_id, fb.key, fb.signature, True))
        held = await self.store.count_one_time_keys(claims.sub, device.device_id)
        if held + len(body.one_time_keys) > self.settings.max_one_time_keys:
            raise ApiError(
                ErrorCode.INVALID,
                f"a device may hold {self.settings.max_one_time_keys} unclaimed one-time keys and "
                f"this one holds {held}: upload fewer",
            )
        for key_id, key, sig, fallback in keys:
            payload = signing.one_time_key_payload(
                claims.sub, device.device_id, key_id, key, fallback=fallback
            )
            if not signing.verify_signature(device.ed25519, sig, payload):
                raise ApiError(
                    ErrorCode.BAD_SIGNATURE, f"key {key_id!r}: signature does not verify"
                )
        result = await self.store.add_keys(
            claims.sub,
            device.device_id,
            [OneTimeKey(k, v, s, f) for k, v, s, f in keys],
            self.clock(),
        )
        if result.clashes:
            raise ApiError(
                ErrorCode.CONFLICT,
                f"key ids already used with other keys: {', '.join(result.clashes)}",
            )
        count = await self.store.count_one_time_keys(claims.sub, device.device_id)
        self.events.emit(
            "keys", claims.sub, action="upload", device=device.device_id, stored=result.stored
        )
        return schemas.KeyCount(one_time_key_count=count)

    async def key_count(self, claims: AccessClaims, device_id: str) -> schemas.KeyCount:
        await self._own_device(claims.sub, device_id)
        return schemas.KeyCount(
            one_time_key_count=await self.store.count_one_time_keys(claims.sub, device_id)
        )

    async def query_keys(self, body: schemas.KeysQueryIn) -> schemas.KeysQueryOut:
        users = list(dict.fromkeys(body.users))
        found: dict[str, list[schemas.DeviceOut]] = {
            u: [] for u in await self.store.existing_users(users)
        }
        for d in await self.store.devices_of(users):
            found[d.user_id].append(device_out(d))
        return schemas.KeysQueryOut(devices=found)

    async def claim_keys(
        self, claims: AccessClaims, body: schemas.KeysClaimIn
    ) -> schemas.KeysClaimOut:
        out: dict[str, dict[str, schemas.ClaimedKey]] = {}
        now = self.clock()
        for ref in dict.fromkeys((r.user_id, r.device_id) for r in body.devices):
            claimed = await self.kv.incr(
                f"claims:{claims.sub}|{ref[0]}|{ref[1]}", CLAIM_WINDOW_SECONDS
            )
            over = claimed > self.settings.claims_per_device
            key = await self.store.claim_key(*ref, now, fallback_only=over)
            if key is not None:
                out.setdefault(ref[0], {})[ref[1]] = schemas.ClaimedKey(
                    key_id=key.key_id,
                    key=key.public_key,
                    signature=key.signature,
                    fallback=key.is_fallback,
                )
        self.events.emit("keys", claims.sub, action="claim", devices=len(body.devices))
        return schemas.KeysClaimOut(one_time_keys=out)

    async def list_devices(self, claims: AccessClaims) -> schemas.DeviceList:
        return schemas.DeviceList(
            devices=[device_out(d) for d in await self.store.devices_of([claims.sub])]
        )

    async def delete_device(self, claims: AccessClaims, device_id: str) -> None:
        if not await self.store.delete_device(claims.sub, device_id):
            raise ApiError(ErrorCode.NOT_FOUND, f"you have no device {device_id!r}")
        self.events.emit("keys", claims.sub, action="device_delete", device=device_id)

    async def purge(self) -> int:
        """Drop sessions that can no longer matter (expired, or revoked long enough ago)."""
        now = self.clock()
        return await self.store.purge_families(now, now - timedelta(seconds=self._deny_ttl))
