"""Attachments: encrypted on this machine, uploaded as an opaque blob, announced in an
encrypted room message that carries the blob id, the file key and the ciphertext's SHA-256.

The server sees ciphertext of a known size and which room it belongs to, nothing else. The
receiver checks the hash and every chunk's tag before a byte reaches the destination path.
"""

from __future__ import annotations

import asyncio
import mimetypes
import tempfile
from pathlib import Path
from typing import Any

from tui.client.api import Api
from tui.crypto import AttachmentCorrupt, FileKey, decrypt_file, encrypt_file

FILE_TYPE = "file"


async def upload_file(api: Api, room: str, path: Path) -> dict[str, Any]:
    """Encrypt ``path``, upload the ciphertext; the content of the message announcing it."""
    with tempfile.TemporaryDirectory(prefix="sealchat-up-") as tmp:
        sealed = Path(tmp) / "blob"
        key = await asyncio.to_thread(encrypt_file, path, sealed)
        stored = await api.upload_blob(room, await asyncio.to_thread(sealed.read_bytes))
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {
        "type": FILE_TYPE,
        "body": f"sent a file: {path.name}",
        "blob": stored["blob"],
        "name": path.name,
        "size": key.size,
        "mime": mime,
        "file": key.to_dict(),
    }


def is_file(content: dict[str, Any]) -> bool:
    return content.get("type") == FILE_TYPE and isinstance(content.get("file"), dict)


def safe_name(content: dict[str, Any]) -> str:
    """The sender's file name with any directory part removed (it must not pick the path)."""
    name = Path(str(content.get("name") or "file")).name
    return name if name not in ("", ".", "..") else "file"


async def download_file(api: Api, content: dict[str, Any], dst: Path) -> Path:
    """Fetch, verify and decrypt the attachment of ``content`` to ``dst``.

    Raises ``AttachmentCorrupt`` (and leaves nothing at ``dst``) when the blob was changed.
    """
    if not is_file(content):
        raise AttachmentCorrupt("this message carries no attachment")
    key = FileKey.from_dict(content["file"])
    data = await api.download_blob(str(content["blob"]))
    with tempfile.TemporaryDirectory(prefix="sealchat-down-") as tmp:
        sealed = Path(tmp) / "blob"
        await asyncio.to_thread(sealed.write_bytes, data)
        await asyncio.to_thread(decrypt_file, sealed, dst, key)
    return dst
