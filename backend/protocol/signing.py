"""What a device signs. Client and server must build byte-identical payloads, so both use this.

Canonical JSON: sorted keys, no insignificant whitespace, UTF-8. Keys and signatures are
unpadded standard base64, as vodozemac prints them.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def device_payload(user_id: str, device_id: str, ed25519: str, curve25519: str) -> bytes:
    """Signed by the device's Ed25519 key when it registers (``POST /auth/devices``)."""
    return canonical_json(
        {
            "user_id": user_id,
            "device_id": device_id,
            "keys": {"ed25519": ed25519, "curve25519": curve25519},
        }
    )


def one_time_key_payload(
    user_id: str, device_id: str, key_id: str, key: str, *, fallback: bool
) -> bytes:
    """Signed by the device's Ed25519 key for each uploaded one-time or fallback key."""
    return canonical_json(
        {
            "user_id": user_id,
            "device_id": device_id,
            "key_id": key_id,
            "key": key,
            "fallback": fallback,
        }
    )


def membership_payload(
    room_id: str,
    seq: int,
    action: str,
    actor: str,
    target: str | None,
    role: str | None,
    device_id: str,
) -> bytes:
    """Signed by the acting member's device for each membership-log entry it caused
    (``POST /chat/rooms/{id}/membership/signatures``). Every client rebuilds it from the log entry
    and checks it against that device's Ed25519 key before trusting the membership change."""
    return canonical_json(
        {
            "room": room_id,
            "seq": seq,
            "action": action,
            "actor": actor,
            "target": target,
            "role": role,
            "device_id": device_id,
        }
    )


def unpadded_b64decode(data: str) -> bytes:
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


def verify_signature(ed25519: str, signature: str, payload: bytes) -> bool:
    """Whether ``signature`` (unpadded base64) is ``ed25519``'s signature over ``payload``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(unpadded_b64decode(ed25519))
        key.verify(unpadded_b64decode(signature), payload)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
