"""Trust on first use for device identity keys, holds on change, and safety numbers.

The key directory is served by the server, so the first keys seen for a user are trusted and
every later change is surfaced: a changed key (or a new device of a user verified by emoji)
holds sending to that user until the person acknowledges it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import vodozemac

from backend.protocol.signing import device_payload
from tui.crypto.store import LocalStore
from tui.crypto.types import DeviceInfo, IdentityChange

_KIND = "trust"
SAFETY_VERSION = b"\x00\x01"
SAFETY_ITERATIONS = 5200


def b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def signature_ok(ed25519: str, payload: bytes, signature: str) -> bool:
    try:
        vodozemac.Ed25519PublicKey.from_base64(ed25519).verify_signature(
            payload, vodozemac.Ed25519Signature.from_base64(signature)
        )
    except (ValueError, TypeError):
        return False
    return True


class TrustStore:
    def __init__(self, store: LocalStore) -> None:
        self._store = store

    def _record(self, user: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = self._store.get_json(_KIND, user)
        return record

    def known(self, user: str) -> bool:
        return self._record(user) is not None

    def update(
        self, user: str, devices: list[dict[str, Any]], *, keep: str | None = None
    ) -> list[IdentityChange]:
        """Apply the user's device list from ``/auth/keys/query``; report what changed.
        ``keep`` names a device left as it is (our own: its keys are ours, not the server's)."""
        record = self._record(user)
        first_use = record is None or not any(not d["removed"] for d in record["devices"].values())
        known: dict[str, Any] = {} if record is None else record["devices"]
        # Our own device is "verified" by construction; only real verifications count here.
        user_verified = any(d["verified"] for dev, d in known.items() if dev != keep)
        changes: list[IdentityChange] = []
        seen: set[str] = set()
        held = bool(record and record.get("held"))
        for dev in devices:
            device_id, keys = str(dev.get("device_id", "")), dev.get("keys") or {}
            if device_id == keep:
                continue
            ed, curve = str(keys.get("ed25519", "")), str(keys.get("curve25519", ""))
            payload = device_payload(user, device_id, ed, curve)
            if dev.get("user_id") != user or not signature_ok(
                ed, payload, str(dev.get("signature", ""))
            ):
                changes.append(IdentityChange(user, device_id, "bad_signature", False))
                continue
            seen.add(device_id)
            old = known.get(device_id)
            if old is None:
                known[device_id] = _entry(ed, curve)
                if not first_use:
                    changes.append(IdentityChange(user, device_id, "new_device", user_verified))
                    held = held or user_verified
            elif (old["ed25519"], old["curve25519"]) != (ed, curve):
                # Old keys stay listed: what they signed (membership entries) still verifies.
                past = [*old.get("past", []), old["ed25519"]]
                known[device_id] = _entry(ed, curve) | {"past": past}
                changes.append(IdentityChange(user, device_id, "key_changed", True))
                held = True
            elif old["removed"]:
                old["removed"] = False
        for device_id, old in known.items():
            if device_id not in seen and device_id != keep and not old["removed"]:
                old["removed"] = True
                changes.append(IdentityChange(user, device_id, "removed", False))
        self._store.put_json(_KIND, user, {"devices": known, "held": held})
        return changes

    def devices(self, user: str, *, include_removed: bool = False) -> list[DeviceInfo]:
        record = self._record(user)
        if record is None:
            return []
        return [
            DeviceInfo(user, dev, d["ed25519"], d["curve25519"], d["verified"], d["removed"])
            for dev, d in sorted(record["devices"].items())
            if include_removed or not d["removed"]
        ]

    def device(self, user: str, device: str) -> DeviceInfo | None:
        for info in self.devices(user, include_removed=True):
            if info.device == device:
                return info
        return None

    def signing_keys(self, user: str, device: str) -> list[str]:
        """Every Ed25519 key this device has had (current first)."""
        record = self._record(user)
        entry = None if record is None else record["devices"].get(device)
        return [] if entry is None else [entry["ed25519"], *entry.get("past", [])]

    def set_own(self, info: DeviceInfo) -> None:
        """Our own device is trusted by construction."""
        record = self._record(info.user) or {"devices": {}, "held": False}
        record["devices"][info.device] = _entry(info.ed25519, info.curve25519) | {"verified": True}
        self._store.put_json(_KIND, info.user, record)

    def held(self, user: str) -> bool:
        record = self._record(user)
        return bool(record and record.get("held"))

    def held_users(self) -> list[str]:
        return [user for user, _ in self._store.secrets(_KIND) if self.held(user)]

    def acknowledge(self, user: str) -> None:
        record = self._record(user)
        if record is not None:
            record["held"] = False
            self._store.put_json(_KIND, user, record)

    def mark_verified(self, user: str, device: str) -> None:
        record = self._record(user)
        if record is not None and device in record["devices"]:
            record["devices"][device]["verified"] = True
            self._store.put_json(_KIND, user, record)


def _entry(ed: str, curve: str) -> dict[str, Any]:
    return {"ed25519": ed, "curve25519": curve, "verified": False, "removed": False}


def _fingerprint(user: str, ed25519_keys: list[str]) -> str:
    """30 digits: iterated SHA-512 over the user's sorted device keys (as Signal does)."""
    keys = b"".join(b64decode(k) for k in sorted(ed25519_keys))
    digest = hashlib.sha512(SAFETY_VERSION + keys + user.encode()).digest()
    for _ in range(SAFETY_ITERATIONS):
        digest = hashlib.sha512(digest + keys).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def safety_number(a_user: str, a_keys: list[str], b_user: str, b_keys: list[str]) -> str:
    """Both users compute the same 12 groups of 5 digits (the two halves sorted by user)."""
    halves = sorted(
        [(a_user, _fingerprint(a_user, a_keys)), (b_user, _fingerprint(b_user, b_keys))]
    )
    digits = halves[0][1] + halves[1][1]
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))
