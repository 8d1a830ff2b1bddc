"""What a device signs. Client and server must build byte-identical payloads, so both use this.

Canonical JSON: sorted keys, no insignificant whitespace, UTF-8. Keys and signatures are
unpadded standard base64, as vodozemac prints them.
"""

from __future__ import annotations

import json
from typing import Any


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
