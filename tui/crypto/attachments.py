"""Attachment encryption: a fresh AES-256-GCM key per file, streamed in 64 KiB chunks.

Chunk i is sealed with nonce ``prefix(8) || i(4)`` and associated data naming i and whether it
is the last chunk, so chunks cannot be reordered, dropped or the file cut short at a chunk
boundary. The SHA-256 of the whole ciphertext travels in the (encrypted) message; the receiver
checks it and every tag before the plaintext appears at its destination.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tui.crypto.errors import AttachmentCorrupt

CHUNK = 64 * 1024
TAG = 16
_AAD = b"sealchat-file-v1"
MAX_CHUNKS = 2**32


@dataclass(frozen=True)
class FileKey:
    key: str
    nonce_prefix: str
    sha256: str
    size: int
    chunk_size: int = CHUNK

    def to_dict(self) -> dict[str, Any]:
        return {
            "alg": "aes-256-gcm-chunked.v1",
            "key": self.key,
            "nonce_prefix": self.nonce_prefix,
            "sha256": self.sha256,
            "size": self.size,
            "chunk_size": self.chunk_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileKey:
        if data.get("alg") != "aes-256-gcm-chunked.v1":
            raise AttachmentCorrupt("unknown attachment format: update sealchat")
        return cls(
            str(data["key"]),
            str(data["nonce_prefix"]),
            str(data["sha256"]),
            int(data["size"]),
            int(data["chunk_size"]),
        )

    def ciphertext_size(self) -> int:
        chunks = max(1, -(-self.size // self.chunk_size))
        return self.size + chunks * TAG


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(index: int, final: bool) -> bytes:
    return _AAD + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _read_full(handle: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left:
        part = handle.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def encrypt_stream(src: BinaryIO, dst: BinaryIO, chunk_size: int = CHUNK) -> FileKey:
    key, prefix = AESGCM.generate_key(bit_length=256), os.urandom(8)
    aead, digest, size, index = AESGCM(key), hashlib.sha256(), 0, 0
    chunk = _read_full(src, chunk_size)
    while True:
        following = _read_full(src, chunk_size) if len(chunk) == chunk_size else b""
        final = not following
        sealed = aead.encrypt(_nonce(prefix, index), chunk, _aad(index, final))
        dst.write(sealed)
        digest.update(sealed)
        size += len(chunk)
        index += 1
        if final:
            break
        if index >= MAX_CHUNKS:
            raise ValueError("file too large to encrypt")
        chunk = following
    return FileKey(
        base64.b64encode(key).decode(),
        base64.b64encode(prefix).decode(),
        digest.hexdigest(),
        size,
        chunk_size,
    )


def encrypt_file(src: Path | str, dst: Path | str) -> FileKey:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        return encrypt_stream(fin, fout)


def decrypt_file(src: Path | str, dst: Path | str, key: FileKey) -> None:
    """Check the hash, then every chunk; ``dst`` appears (atomically) only if all is valid."""
    src, dst = Path(src), Path(dst)
    if src.stat().st_size != key.ciphertext_size():
        raise AttachmentCorrupt("the file has the wrong size: it was truncated or changed")
    digest = hashlib.sha256()
    with open(src, "rb") as fin:
        for block in iter(lambda: fin.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != key.sha256:
        raise AttachmentCorrupt("the file does not match its checksum: it was changed")
    aead = AESGCM(base64.b64decode(key.key))
    prefix = base64.b64decode(key.nonce_prefix)
    chunks = max(1, -(-key.size // key.chunk_size))
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".sealchat-", suffix=".part")
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            for index in range(chunks):
                sealed = _read_full(fin, key.chunk_size + TAG)
                try:
                    fout.write(
                        aead.decrypt(
                            _nonce(prefix, index), sealed, _aad(index, index == chunks - 1)
                        )
                    )
                except InvalidTag as exc:
                    raise AttachmentCorrupt(f"chunk {index} failed authentication") from exc
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
