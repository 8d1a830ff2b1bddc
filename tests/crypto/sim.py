"""A test double of the server for the crypto core: an in-memory key directory, to-device
queues, membership logs and room timelines, with the real server's validation of device and
key bodies (``backend.auth.schemas``) and its signature checks. It can be made to misbehave
(inject log entries, tamper, replay) because the server is the adversary we test against.

Every ``SimDevice`` runs the real engine on a real encrypted store; only the wire is simulated.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.auth.schemas import DeviceIn, KeysUploadIn
from backend.protocol.signing import device_payload, one_time_key_payload
from tui.crypto import Decrypted, Engine, LocalStore, RotationPolicy, Undecryptable
from tui.crypto.trust import signature_ok
from tui.crypto.types import DeviceRef, Effect, RoomSend, ToDeviceFailed

PASSPHRASE = "correct horse battery staple"


@dataclass
class Room:
    kind: str
    log: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


class SimServer:
    def __init__(self) -> None:
        self.devices: dict[str, list[dict[str, Any]]] = {}
        self.otks: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self.fallback: dict[tuple[str, str], dict[str, Any]] = {}
        self.queues: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.rooms: dict[str, Room] = {}
        self._ids = itertools.count(1)

    # auth
    def register(self, user: str, body: dict[str, Any]) -> None:
        dev = DeviceIn.model_validate(body)
        payload = device_payload(user, dev.device_id, dev.keys.ed25519, dev.keys.curve25519)
        assert signature_ok(dev.keys.ed25519, payload, dev.signature), "bad device signature"
        self.devices.setdefault(user, []).append(
            {"user_id": user, **dev.model_dump(), "created_at": "2026-11-22T00:00:00Z"}
        )

    def upload(self, user: str, body: dict[str, Any]) -> int:
        up = KeysUploadIn.model_validate(body)
        ed = next(d for d in self.devices[user] if d["device_id"] == up.device_id)["keys"][
            "ed25519"
        ]
        slot = self.otks.setdefault((user, up.device_id), [])
        for key_id, k in up.one_time_keys.items():
            p = one_time_key_payload(user, up.device_id, key_id, k.key, fallback=False)
            assert signature_ok(ed, p, k.signature), f"bad one-time key signature {key_id}"
            slot.append((key_id, {"key": k.key, "signature": k.signature}))
        if up.fallback_key is not None:
            fb = up.fallback_key
            p = one_time_key_payload(user, up.device_id, fb.key_id, fb.key, fallback=True)
            assert signature_ok(ed, p, fb.signature), "bad fallback key signature"
            self.fallback[(user, up.device_id)] = fb.model_dump()
        return len(slot)

    def query(self, user: str) -> list[dict[str, Any]]:
        return [dict(d) for d in self.devices.get(user, [])]

    def claim(self, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for ref in body["devices"]:
            key = (ref["user_id"], ref["device_id"])
            if self.otks.get(key):
                key_id, k = self.otks[key].pop(0)
                out.setdefault(key[0], {})[key[1]] = {"key_id": key_id, **k, "fallback": False}
            elif key in self.fallback:
                fb = self.fallback[key]
                out.setdefault(key[0], {})[key[1]] = {**fb, "fallback": True}
        return {"one_time_keys": out}

    # chat
    def to_device(self, sender: str, sender_device: str, out: Any) -> None:
        frame = {
            "id": out.msg_id,
            "sender": sender,
            "sender_device": sender_device,
            "ts": "2026-11-22T00:00:00Z",
            "ciphertext": out.ciphertext,
        }
        self.queues.setdefault((out.user, out.device), []).append(frame)

    def take(self, user: str, device: str) -> list[dict[str, Any]]:
        return self.queues.pop((user, device), [])

    def append_log(
        self, room: str, action: str, actor: str, target: str | None, role: str | None = None
    ) -> dict[str, Any]:
        log = self.rooms[room].log
        entry = {
            "seq": len(log) + 1,
            "action": action,
            "actor": actor,
            "target": target,
            "role": role,
            "ts": "2026-11-22T00:00:00Z",
        }
        log.append(entry)
        return entry

    def add_signatures(self, room: str, body: dict[str, Any] | None) -> None:
        for sig in (body or {}).get("signatures", []):
            entry = self.rooms[room].log[sig["seq"] - 1]
            entry["device_id"], entry["signature"] = sig["device"], sig["signature"]

    def post(self, room: str, sender: str, device: str, ciphertext: str) -> dict[str, Any]:
        msgs = self.rooms[room].messages
        frame = {
            "room": room,
            "seq": len(msgs) + 1,
            "msg_id": f"m{next(self._ids)}",
            "sender": sender,
            "device": device,
            "ts": "2026-11-22T00:00:00Z",
            "kind": "m",
            "ciphertext": ciphertext,
        }
        msgs.append(frame)
        return frame


class SimDevice:
    def __init__(
        self,
        server: SimServer,
        home: Path,
        user: str,
        device: str,
        policy: RotationPolicy | None = None,
    ) -> None:
        self.server, self.user, self.device = server, user, device
        self.store = LocalStore.open(home / f"{user}-{device}.sqlite3", PASSPHRASE)
        self.engine = Engine.create(self.store, user, device, policy)
        server.register(user, self.engine.device_registration())
        self.publish_keys()
        self.effects: list[Effect] = []

    @property
    def ref(self) -> DeviceRef:
        return DeviceRef(self.user, self.device)

    def publish_keys(self) -> None:
        count = len(self.server.otks.get((self.user, self.device), []))
        body = self.engine.one_time_keys_upload(count)
        if body is not None:
            self.server.upload(self.user, body)
            self.engine.mark_keys_published()

    def refresh(self, *users: str) -> list[Any]:
        changes = []
        for user in users:
            changes += self.engine.update_devices(user, self.server.query(user))
        return changes

    def flush(self) -> None:
        pending = self.engine.pending_to_device()
        for out in pending:
            self.server.to_device(self.user, self.device, out)
        self.engine.mark_to_device_sent(o.msg_id for o in pending)

    def receive(self) -> list[Effect]:
        effects: list[Effect] = []
        for frame in self.server.take(self.user, self.device):
            effects += self.engine.decrypt_to_device(frame)
        unknown = {
            e.sender
            for e in effects
            if isinstance(e, ToDeviceFailed) and e.reason == "unknown_device"
        }
        if unknown:  # what the client does: fetch those devices, then try again
            self.refresh(*sorted(unknown))
            effects += self.engine.retry_to_device()
        self.flush()
        self.effects += effects
        return effects

    def ensure_sessions(self, refs: list[DeviceRef]) -> None:
        missing = self.engine.missing_sessions(refs)
        if missing:
            self.engine.add_claimed_keys(self.server.claim(self.engine.claim_request(missing)))
        self.flush()

    # membership
    def act(self, room: str, action: str, target: str | None, role: str | None = None) -> None:
        """Do a membership change the honest way: expect it, let the server log it, sign it."""
        self.engine.expect_membership(room, action, target, role)
        self.server.append_log(room, action, self.user, target, role)
        self.sign(room)

    def sign(self, room: str) -> None:
        log = self.server.rooms[room].log
        self.server.add_signatures(room, self.engine.sign_membership(room, log))

    def verify(self, room: str) -> Any:
        r = self.server.rooms[room]
        actors = {e["actor"] for e in r.log} | {e["target"] for e in r.log if e["target"]}
        self.refresh(*sorted(actors))
        return self.engine.verify_membership(room, r.kind, r.log)

    # messages
    def send(self, room: str, text: str, **extra: Any) -> tuple[RoomSend, dict[str, Any]]:
        self.verify(room)
        self.ensure_sessions(self.engine.room_devices(room))
        sent = self.engine.encrypt_room(room, {"body": text, **extra})
        self.flush()
        return sent, self.server.post(room, self.user, self.device, sent.ciphertext)

    def read(self, room: str) -> list[Decrypted | Undecryptable]:
        self.receive()
        return [self.engine.decrypt_room(f) for f in self.server.rooms[room].messages]

    def texts(self, room: str) -> list[str]:
        out = []
        for r in self.read(room):
            out.append(r.content["body"] if isinstance(r, Decrypted) else f"<{r.reason}>")
        return out


def group(server: SimServer, room: str, creator: SimDevice, *others: SimDevice) -> None:
    """A group room whose members all joined the honest way."""
    server.rooms[room] = Room("group")
    creator.act(room, "create", creator.user)
    for other in others:
        creator.act(room, "invite", other.user)
        other.act(room, "join", other.user)


def dump(frame: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return json.loads(json.dumps(frame)) | changes
