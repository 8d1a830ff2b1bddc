"""Encrypted attachments: upload to a room, download as a member of that room.

The client encrypts a file with a fresh key (``tui/crypto``) and uploads only ciphertext; the
key and the ciphertext's SHA-256 travel inside the encrypted room message, so the server holds
bytes it cannot read and cannot swap unnoticed. A blob belongs to its uploader and its room:
only current members of that room can fetch it, and to everyone else it does not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable
from datetime import UTC, datetime

from pydantic import BaseModel

from backend.chat.social import SocialService
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode
from backend.stores.blobs.port import BlobInfo, BlobStore, BlobTooLarge


class BlobOut(BaseModel):
    blob: str
    room: str
    size: int
    sha256: str


def new_blob_id() -> str:
    """``b_`` and 22 url-safe characters: 128 random bits."""
    return "b_" + secrets.token_urlsafe(16)


def _not_found(blob_id: str) -> ApiError:
    return ApiError(ErrorCode.NOT_FOUND, f"no file {blob_id!r} in your rooms")


class Blobs:
    def __init__(self, store: BlobStore, social: SocialService, max_bytes: int) -> None:
        self._store = store
        self._social = social
        self.max_bytes = max_bytes

    async def upload(self, user: str, room: str, source: AsyncIterable[bytes]) -> BlobOut:
        if not await self._social.is_member(room, user):
            raise ApiError(
                ErrorCode.NOT_FOUND, f"no room {room!r} among yours: upload to a room you are in"
            )
        try:
            info = await self._store.put(
                new_blob_id(), user, room, source, max_size=self.max_bytes, now=datetime.now(UTC)
            )
        except BlobTooLarge:
            raise ApiError(
                ErrorCode.TOO_LARGE,
                f"the encrypted file is over {self.max_bytes} bytes: send a smaller one",
            ) from None
        return BlobOut(blob=info.id, room=info.room, size=info.size, sha256=info.sha256)

    async def readable(self, user: str, blob_id: str) -> BlobInfo:
        """The blob's record if ``user`` is a member of its room now; 404 otherwise."""
        info = await self._store.info(blob_id)
        if info is None or not await self._social.is_member(info.room, user):
            raise _not_found(blob_id)
        return info

    def chunks(self, blob_id: str) -> AsyncIterable[bytes]:
        return self._store.read(blob_id)
