"""Encryption at rest: Argon2id turns the passphrase into a key-encryption key, which wraps a
random data key; the data key seals every secret row with AES-256-GCM.

Why two keys: changing the passphrase re-wraps 32 bytes instead of rewriting the store, and the
wrapped data key doubles as the key-check value (a wrong passphrase fails its GCM tag).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
KEY_BYTES = 32
_VERSION = b"\x01"


class SealError(Exception):
    """A sealed value failed authentication (wrong key, wrong row, or changed bytes)."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost; stored next to the salt so a later release can raise it."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2

    MIN_MEMORY_KIB = 19456  # the OWASP floor, as for server-side passwords

    def check(self) -> None:
        if self.memory_kib < self.MIN_MEMORY_KIB or self.time_cost < 2 or self.parallelism < 1:
            raise ValueError("Argon2id parameters below the minimum: refusing a weak store key")


def derive_kek(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    if not passphrase:
        raise ValueError("an empty passphrase cannot protect the store: choose one")
    params.check()
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def subkey(key: bytes, purpose: str) -> bytes:
    """A separate key per use (e.g. vodozemac pickles), so no key serves two ciphers."""
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=purpose.encode()).derive(key)


class SecretBox:
    """AES-256-GCM with a fresh random 96-bit nonce per seal; the associated data names the
    table and row, so a sealed value moved to another row no longer opens."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a SecretBox key is 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise SealError("not a sealed value")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, aad)
        except InvalidTag as exc:
            raise SealError("authentication failed") from exc

    @staticmethod
    def nonce_of(sealed: bytes) -> bytes:
        return sealed[1 : 1 + NONCE_BYTES]
