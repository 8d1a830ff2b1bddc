"""Who is on the other end of a socket: the ``auth`` frame → a verified ``Principal``.

The token is checked exactly like a REST bearer token (signature, claims, this service's
``aud``, the deny-list). A device named in the frame must be one the user registered, so a
connection can only ever receive to-device messages meant for its own user's devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.common.auth_guard import Guard
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import Auth
from backend.stores.relational.schema import devices


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    device: str | None
    session: str
    """The login session (refresh-token family) the token belongs to."""
    expires: int
    """When the access token expires (Unix seconds)."""


async def device_registered(engine: AsyncEngine, user: str, device: str) -> bool:
    query = select(devices.c.device_id).where(
        devices.c.user_id == user, devices.c.device_id == device
    )
    async with engine.connect() as conn:
        return (await conn.execute(query)).first() is not None


async def authenticate(frame: Auth, guard: Guard, engine: AsyncEngine) -> Principal:
    """The verified caller, or ``ApiError`` (unauthorized, token_expired, not_found)."""
    claims = await guard.check(frame.token)
    if frame.device is not None and not await device_registered(engine, claims.sub, frame.device):
        raise ApiError(
            ErrorCode.NOT_FOUND, "unknown device: register it with POST /auth/devices first"
        )
    return Principal(user=claims.sub, device=frame.device, session=claims.sid, expires=claims.exp)
