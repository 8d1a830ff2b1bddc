"""A test device: real Ed25519/Curve25519 keys signing exactly what a client would sign."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from backend.protocol import signing


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def raw_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class TestDevice:
    __test__ = False  # not a test class

    def __init__(self, user_id: str, device_id: str | None = None) -> None:
        self.user_id = user_id
        self.device_id = device_id or "D" + uuid.uuid4().hex[:9].upper()
        self.signer = Ed25519PrivateKey.generate()
        self.ed25519 = b64(raw_public(self.signer))
        self.curve25519 = b64(raw_public(X25519PrivateKey.generate()))

    def sign(self, payload: bytes) -> str:
        return b64(self.signer.sign(payload))

    def registration(self) -> dict[str, Any]:
        payload = signing.device_payload(
            self.user_id, self.device_id, self.ed25519, self.curve25519
        )
        return {
            "device_id": self.device_id,
            "display_name": "test device",
            "keys": {"ed25519": self.ed25519, "curve25519": self.curve25519},
            "signature": self.sign(payload),
        }

    def signed_key(self, key_id: str, *, fallback: bool = False) -> dict[str, str]:
        key = b64(raw_public(X25519PrivateKey.generate()))
        payload = signing.one_time_key_payload(
            self.user_id, self.device_id, key_id, key, fallback=fallback
        )
        return {"key": key, "signature": self.sign(payload)}
