"""Megolm room sessions: our outbound session per room, inbound sessions bound to the
Olm-authenticated device that shared them, the replay store, and undecryptable messages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import vodozemac

from tui.crypto.store import LocalStore
from tui.crypto.types import Decrypted, DeviceRef, Undecryptable

ALG_MEGOLM = "megolm.v1"


@dataclass(frozen=True)
class RotationPolicy:
    """When to start a new outbound session even if nobody left."""

    messages: int = 100
    seconds: float = 7 * 24 * 3600


@dataclass(frozen=True)
class Sender:
    """The device an inbound session is bound to (from the Olm channel it arrived on)."""

    user: str
    device: str
    curve25519: str
    ed25519: str


class RoomSessions:
    def __init__(self, store: LocalStore, me: Sender, policy: RotationPolicy) -> None:
        self.store, self.me, self.policy = store, me, policy

    # -- outbound --------------------------------------------------------------------------

    def outbound(
        self, room: str, devices: set[tuple[str, str, str]], members: set[str]
    ) -> tuple[vodozemac.GroupSession, dict[str, Any]]:
        """Our session for the room, new if a device left or changed keys, it is old or used
        up, or the member set changed. ``devices``: (user, device, curve25519) of recipients."""
        state: dict[str, Any] | None = self.store.get_json("outbound", room)
        if state is not None:
            shared = {(u, d, curve) for u, d, _, curve in state["shared"]}
            lost = bool(shared - devices)
            too_old = time.time() - state["created"] >= self.policy.seconds
            used_up = state["count"] >= self.policy.messages
            if not (lost or too_old or used_up or set(state["members"]) != members):
                return vodozemac.GroupSession.from_pickle(
                    state["pickle"], self.store.pickle_key
                ), state
        session = vodozemac.GroupSession()
        state = {
            "created": time.time(),
            "count": 0,
            "shared": [],
            "members": sorted(members),
            "session_id": session.session_id,
        }
        inbound = vodozemac.InboundGroupSession(session.session_key)
        self.save_inbound(room, inbound, self.me)
        return session, state

    def save_outbound(
        self, room: str, session: vodozemac.GroupSession, state: dict[str, Any]
    ) -> None:
        state["pickle"] = session.pickle(self.store.pickle_key)
        self.store.put_json("outbound", room, state)

    def forget_outbound(self, room: str) -> None:
        self.store.delete_secret("outbound", room)

    def key_for(self, room: str, session: vodozemac.GroupSession) -> dict[str, Any]:
        return {
            "type": "room_key",
            "room": room,
            "session_id": session.session_id,
            "session_key": session.session_key.to_base64(),
        }

    def reshare_keys(self, ref: DeviceRef) -> list[dict[str, Any]]:
        """Room keys for every outbound session this device had, from the index it first got
        (used after a broken pairwise session was replaced)."""
        out = []
        for room, raw in self.store.secrets("outbound"):
            state = json.loads(raw)
            for user, device, index, _ in state["shared"]:
                if DeviceRef(user, device) != ref:
                    continue
                inbound = self.inbound(room, state["session_id"])
                exported = inbound[0].export_at(index) if inbound else None
                if exported is not None:
                    out.append(
                        {
                            "type": "room_key",
                            "room": room,
                            "session_id": state["session_id"],
                            "exported_key": exported.to_base64(),
                        }
                    )
        return out

    def encrypt(self, room: str, session: vodozemac.GroupSession, content: dict[str, Any]) -> str:
        plaintext = {
            "room": room,
            "sender": self.me.user,
            "sender_device": self.me.device,
            "content": content,
        }
        message = session.encrypt(json.dumps(plaintext).encode())
        return json.dumps(
            {
                "alg": ALG_MEGOLM,
                "session_id": session.session_id,
                "sender_key": self.me.curve25519,
                "body": message.to_base64(),
            }
        )

    # -- inbound -----------------------------------------------------------------------------

    def inbound(
        self, room: str, session_id: str
    ) -> tuple[vodozemac.InboundGroupSession, Sender] | None:
        state = self.store.get_json("inbound", f"{room}|{session_id}")
        if state is None:
            return None
        session = vodozemac.InboundGroupSession.from_pickle(state["pickle"], self.store.pickle_key)
        return session, Sender(**state["sender"])

    def save_inbound(
        self, room: str, session: vodozemac.InboundGroupSession, sender: Sender
    ) -> None:
        self.store.put_json(
            "inbound",
            f"{room}|{session.session_id}",
            {"pickle": session.pickle(self.store.pickle_key), "sender": sender.__dict__},
        )

    def receive_key(self, content: dict[str, Any], sender: Sender) -> str | None:
        """Store a room key that arrived over Olm from ``sender``; None if it was refused."""
        room, session_id = str(content.get("room", "")), str(content.get("session_id", ""))
        try:
            if "exported_key" in content:
                session = vodozemac.InboundGroupSession.import_session(
                    vodozemac.ExportedSessionKey(str(content["exported_key"]))
                )
            else:
                session = vodozemac.InboundGroupSession(
                    vodozemac.SessionKey(str(content["session_key"]))
                )
        except (ValueError, KeyError, TypeError):
            return None
        if session.session_id != session_id or not room:
            return None
        existing = self.inbound(room, session_id)
        if existing is not None:
            old, bound = existing
            if bound != sender:
                return None  # a session id is bound to its first sender for good
            if old.first_known_index <= session.first_known_index:
                return session_id
        self.save_inbound(room, session, sender)
        return session_id

    def decrypt(self, frame: dict[str, Any]) -> Decrypted | Undecryptable:
        room, seq = str(frame.get("room", "")), int(frame.get("seq", 0))
        msg_id = str(frame.get("msg_id", ""))
        sender, device = str(frame.get("sender", "")), str(frame.get("device", ""))

        def fail(reason: str, waiting_for: str | None = None) -> Undecryptable:
            return Undecryptable(room, seq, msg_id, sender, device, reason, waiting_for)

        try:
            envelope = json.loads(str(frame.get("ciphertext", "")))
            if envelope.get("alg") != ALG_MEGOLM:
                return fail("bad_format")
            message = vodozemac.MegolmMessage.from_base64(str(envelope["body"]))
            session_id = str(envelope["session_id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return fail("bad_format")
        found = self.inbound(room, session_id)
        if found is None:
            return fail("no_session", f"{sender}/{device}")
        session, bound = found
        if (bound.user, bound.device, bound.curve25519) != (
            sender,
            device,
            envelope.get("sender_key"),
        ):
            return fail("sender_mismatch")
        index = message.message_index()
        if index < session.first_known_index:
            return fail("before_join")
        try:
            result = session.decrypt(message)
            inner = json.loads(result.plaintext)
        except ValueError:
            return fail("tampered")
        if not isinstance(inner, dict) or not isinstance(inner.get("content"), dict):
            return fail("bad_format")
        if (inner.get("room"), inner.get("sender"), inner.get("sender_device")) != (
            room,
            bound.user,
            bound.device,
        ):
            return fail("sender_mismatch")
        seen = self.store.replay_seen(session_id, result.message_index)
        if seen is not None and seen != (room, seq):
            return fail("replay")
        self.store.replay_record(session_id, result.message_index, room, seq)
        return Decrypted(
            room,
            seq,
            msg_id,
            sender,
            device,
            inner["content"],
            True,
            session_id,
            result.message_index,
        )

    # -- undecryptable, kept for retry -------------------------------------------------------

    def remember(self, frame: dict[str, Any], result: Undecryptable) -> None:
        self.store.put_json(
            "undecryptable",
            f"{frame['room']}|{int(frame['seq']):012d}",
            {"frame": frame, "reason": result.reason, "waiting_for": result.waiting_for},
        )

    def waiting(self, room: str | None) -> list[tuple[dict[str, Any], Undecryptable]]:
        prefix = "" if room is None else f"{room}|"
        out = []
        for _, raw in self.store.secrets("undecryptable", prefix):
            item = json.loads(raw)
            f = item["frame"]
            result = Undecryptable(
                str(f["room"]),
                int(f["seq"]),
                str(f.get("msg_id", "")),
                str(f.get("sender", "")),
                str(f.get("device", "")),
                item["reason"],
                item["waiting_for"],
            )
            out.append((f, result))
        return out

    def forget(self, frame: dict[str, Any]) -> None:
        self.store.delete_secret("undecryptable", f"{frame['room']}|{int(frame['seq']):012d}")
