"""The device account and its pairwise Olm sessions; the durable to-device send queue.

Every to-device plaintext names sender and recipient (user, device, Ed25519 key) inside the
encryption, so the server cannot redirect or re-attribute a message (as Matrix does).
A session that stops decrypting ("wedged") is replaced by a new one, never ignored.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import vodozemac

from backend.protocol.signing import device_payload, one_time_key_payload
from tui.crypto.errors import NoAccount
from tui.crypto.store import LocalStore
from tui.crypto.trust import TrustStore, signature_ok
from tui.crypto.types import DeviceInfo, DeviceRef, ToDeviceOut

OTK_TARGET = 50
RENEW_INTERVAL = 3600
FALLBACK_MAX_AGE = 7 * 24 * 3600
FALLBACK_PREFIX = "fb:"
ALG_OLM = "olm.v1"


def new_msg_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


class Decoded:
    """A to-device plaintext that passed every check."""

    def __init__(self, sender: str, device: str, content: dict[str, Any], *, new: bool) -> None:
        self.sender, self.device, self.content, self.new_session = sender, device, content, new


class PairwiseFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Pairwise:
    def __init__(self, store: LocalStore, trust: TrustStore) -> None:
        self.store, self.trust = store, trust
        info = store.get_json("account", "info")
        pickle = store.get_secret("account", "pickle")
        if info is None or pickle is None:
            raise NoAccount()
        self.user_id: str = info["user"]
        self.device_id: str = info["device"]
        self.account = vodozemac.Account.from_pickle(pickle.decode(), store.pickle_key)

    @staticmethod
    def create(store: LocalStore, user_id: str, device_id: str) -> None:
        account = vodozemac.Account()
        with store.transaction():
            store.put_json("account", "info", {"user": user_id, "device": device_id})
            store.put_secret("account", "pickle", account.pickle(store.pickle_key).encode())

    @property
    def ed25519(self) -> str:
        return self.account.ed25519_key.to_base64()

    @property
    def curve25519(self) -> str:
        return self.account.curve25519_key.to_base64()

    def save_account(self) -> None:
        self.store.put_secret(
            "account", "pickle", self.account.pickle(self.store.pickle_key).encode()
        )

    def sign(self, payload: bytes) -> str:
        return self.account.sign(payload).to_base64()

    # -- auth bodies ---------------------------------------------------------------------

    def registration(self, display_name: str) -> dict[str, Any]:
        ed, curve = self.ed25519, self.curve25519
        payload = device_payload(self.user_id, self.device_id, ed, curve)
        return {
            "device_id": self.device_id,
            "display_name": display_name,
            "keys": {"ed25519": ed, "curve25519": curve},
            "signature": self.sign(payload),
        }

    def keys_upload(self, server_unclaimed: int) -> dict[str, Any] | None:
        with self.store.transaction():
            if not self.account.one_time_keys and server_unclaimed < OTK_TARGET // 2:
                self.account.generate_one_time_keys(OTK_TARGET - max(server_unclaimed, 0))
            made = self.store.get_json("account", "fallback")
            # A fallback key can be claimed many times: replace it weekly (vodozemac keeps the
            # previous one for late pre-key messages).
            if not isinstance(made, int | float) or time.time() - made >= FALLBACK_MAX_AGE:
                self.account.generate_fallback_key()  # type: ignore[attr-defined]  # not in .pyi
                self.store.put_json("account", "fallback", time.time())
            self.save_account()
        body: dict[str, Any] = {"device_id": self.device_id}
        otks = {
            key_id: self._signed(key_id, key.to_base64(), fallback=False)
            for key_id, key in sorted(self.account.one_time_keys.items())
        }
        if otks:
            body["one_time_keys"] = otks
        for key_id, key in _fallback_keys(self.account).items():
            fid = FALLBACK_PREFIX + key_id
            body["fallback_key"] = {
                "key_id": fid,
                **self._signed(fid, key.to_base64(), fallback=True),
            }
        return body if len(body) > 1 else None

    def _signed(self, key_id: str, key: str, *, fallback: bool) -> dict[str, str]:
        payload = one_time_key_payload(self.user_id, self.device_id, key_id, key, fallback=fallback)
        return {"key": key, "signature": self.sign(payload)}

    def mark_published(self) -> None:
        self.account.mark_keys_as_published()
        self.save_account()

    # -- sessions ---------------------------------------------------------------------------

    def _sessions(self, curve: str) -> list[tuple[str, dict[str, Any]]]:
        rows = [(n, json.loads(raw)) for n, raw in self.store.secrets("olm", curve + "|")]
        return sorted(rows, key=lambda r: r[1]["used"], reverse=True)

    def has_session(self, info: DeviceInfo) -> bool:
        return bool(self._sessions(info.curve25519))

    def needs_renewal(self) -> set[DeviceRef]:
        return {DeviceRef(u, d) for u, d in self.store.get_json("state", "renew") or []}

    def _set_renewal(self, refs: set[DeviceRef]) -> None:
        self.store.put_json("state", "renew", sorted([r.user, r.device] for r in refs))

    def mark_wedged(self, ref: DeviceRef) -> bool:
        """Ask for a new session with ``ref``, at most once per hour per device: a server
        replaying old messages must not make us churn sessions (as Matrix clients limit it)."""
        renewed = self.store.get_json("state", "renewed") or {}
        if time.time() - renewed.get(str(ref), 0) < RENEW_INTERVAL:
            return False
        renewed[str(ref)] = time.time()
        with self.store.transaction():
            self.store.put_json("state", "renewed", renewed)
            self._set_renewal(self.needs_renewal() | {ref})
        return True

    def _save_session(self, session: vodozemac.Session, info: DeviceInfo, created: float) -> None:
        self.store.put_json(
            "olm",
            f"{info.curve25519}|{session.session_id}",
            {
                "pickle": session.pickle(self.store.pickle_key),
                "user": info.user,
                "device": info.device,
                "created": created,
                "used": time.time(),
            },
        )

    def add_claimed(self, info: DeviceInfo, claimed: dict[str, Any]) -> bool:
        """Open an outbound session with a claimed key after checking its signature."""
        key_id, key = str(claimed.get("key_id", "")), str(claimed.get("key", ""))
        payload = one_time_key_payload(
            info.user, info.device, key_id, key, fallback=bool(claimed.get("fallback"))
        )
        if not signature_ok(info.ed25519, payload, str(claimed.get("signature", ""))):
            return False
        session = self.account.create_outbound_session(
            vodozemac.Curve25519PublicKey.from_base64(info.curve25519),
            vodozemac.Curve25519PublicKey.from_base64(key),
        )
        with self.store.transaction():
            self._save_session(session, info, time.time())
            renew = self.needs_renewal()
            if info.ref in renew:
                self._set_renewal(renew - {info.ref})
                self.queue(info, {"type": "dummy"})
        return True

    # -- encrypt / decrypt ------------------------------------------------------------------------

    def queue(self, info: DeviceInfo, content: dict[str, Any]) -> ToDeviceOut:
        """Encrypt for one device (which must have a session) and put it on the send queue."""
        name, state = self._sessions(info.curve25519)[0]
        session = vodozemac.Session.from_pickle(state["pickle"], self.store.pickle_key)
        plaintext = {
            "type": content.get("type"),
            "content": content,
            "sender": self.user_id,
            "sender_device": self.device_id,
            "sender_ed25519": self.ed25519,
            "recipient": info.user,
            "recipient_device": info.device,
            "recipient_ed25519": info.ed25519,
        }
        kind, body = session.encrypt(json.dumps(plaintext).encode()).to_parts()
        envelope = {
            "alg": ALG_OLM,
            "sender_key": self.curve25519,
            "type": kind,
            "body": base64.b64encode(body).decode(),
        }
        out = ToDeviceOut(new_msg_id(), info.user, info.device, json.dumps(envelope))
        with self.store.transaction():
            state["pickle"], state["used"] = session.pickle(self.store.pickle_key), time.time()
            self.store.put_json("olm", name, state)
            self.store.put_json("todevice", f"{time.time_ns():020d}|{out.msg_id}", out.__dict__)
        return out

    def pending(self) -> list[ToDeviceOut]:
        return [ToDeviceOut(**json.loads(raw)) for _, raw in self.store.secrets("todevice")]

    def mark_sent(self, msg_ids: set[str]) -> None:
        with self.store.transaction():
            for name, _ in self.store.secrets("todevice"):
                if name.split("|", 1)[1] in msg_ids:
                    self.store.delete_secret("todevice", name)

    def decrypt(self, info: DeviceInfo, ciphertext: str) -> Decoded:
        """Decrypt a to-device message from a known device; raise PairwiseFailure otherwise."""
        try:
            envelope = json.loads(ciphertext)
            kind, body = int(envelope["type"]), base64.b64decode(envelope["body"])
            message = vodozemac.AnyOlmMessage.from_parts(kind, body)
            if envelope.get("alg") != ALG_OLM:
                raise ValueError("alg")
        except (ValueError, KeyError, TypeError) as exc:
            raise PairwiseFailure("bad_format") from exc
        if envelope.get("sender_key") != info.curve25519:
            raise PairwiseFailure("sender_mismatch")
        plaintext, new = self._decrypt_any(info, message)
        try:
            decoded = json.loads(plaintext)
        except ValueError as exc:
            raise PairwiseFailure("bad_format") from exc
        expected = {
            "sender": info.user,
            "sender_device": info.device,
            "sender_ed25519": info.ed25519,
            "recipient": self.user_id,
            "recipient_device": self.device_id,
            "recipient_ed25519": self.ed25519,
        }
        if any(decoded.get(k) != v for k, v in expected.items()):
            raise PairwiseFailure("sender_mismatch")
        content = decoded.get("content")
        if not isinstance(content, dict):
            raise PairwiseFailure("bad_format")
        return Decoded(info.user, info.device, content, new=new)

    def _decrypt_any(
        self, info: DeviceInfo, message: vodozemac.AnyOlmMessage
    ) -> tuple[bytes, bool]:
        pre_key = message.to_pre_key()
        for name, state in self._sessions(info.curve25519):
            session = vodozemac.Session.from_pickle(state["pickle"], self.store.pickle_key)
            if pre_key is not None and not session.session_matches(pre_key):
                continue
            try:
                plaintext = session.decrypt(message)
            except ValueError:
                continue
            state["pickle"], state["used"] = session.pickle(self.store.pickle_key), time.time()
            self.store.put_json("olm", name, state)
            return plaintext, False
        if pre_key is None:
            self.mark_wedged(info.ref)
            raise PairwiseFailure("wedged")
        had_session = bool(self._sessions(info.curve25519))
        try:
            session, plaintext = self.account.create_inbound_session(
                vodozemac.Curve25519PublicKey.from_base64(info.curve25519), pre_key
            )
        except ValueError as exc:
            raise PairwiseFailure("tampered") from exc
        with self.store.transaction():
            self._save_session(session, info, time.time())
            self.save_account()
        return plaintext, had_session


def _fallback_keys(account: vodozemac.Account) -> dict[str, vodozemac.Curve25519PublicKey]:
    """The unpublished fallback key (vodozemac 0.10 has it; its type stubs omit it)."""
    keys: dict[str, vodozemac.Curve25519PublicKey] = getattr(account, "fallback_key")  # noqa: B009
    return keys
