"""The sans-I/O E2EE engine: the client feeds it what the server sent and sends what it
returns (see API.md). It owns no socket, no clock-driven task and no global state."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable
from typing import Any

from tui.crypto import membership as membership_log
from tui.crypto.errors import MembershipUnknown, NoSession, SendingHeld
from tui.crypto.pairwise import Pairwise, PairwiseFailure, new_msg_id
from tui.crypto.rooms import RoomSessions, RotationPolicy, Sender
from tui.crypto.sas import SasFlows
from tui.crypto.store import LocalStore
from tui.crypto.trust import TrustStore, safety_number
from tui.crypto.types import (
    Decrypted,
    DeviceInfo,
    DeviceRef,
    Effect,
    IdentityChange,
    Membership,
    RoomKeyReceived,
    RoomSend,
    SessionRecovered,
    ToDeviceContent,
    ToDeviceFailed,
    ToDeviceOut,
    Undecryptable,
)

EXPECTATION_TTL = 24 * 3600


class Engine:
    def __init__(self, store: LocalStore, policy: RotationPolicy | None = None) -> None:
        self.store = store
        self.trust = TrustStore(store)
        self.olm = Pairwise(store, trust=self.trust)
        self.user_id, self.device_id = self.olm.user_id, self.olm.device_id
        self.ed25519, self.curve25519 = self.olm.ed25519, self.olm.curve25519
        me = DeviceInfo(self.user_id, self.device_id, self.ed25519, self.curve25519, True)
        self._me = me
        self.trust.set_own(me)
        self.rooms = RoomSessions(
            store,
            Sender(self.user_id, self.device_id, self.curve25519, self.ed25519),
            policy or RotationPolicy(),
        )
        self.sas = SasFlows(me, self._send_ref, self._lookup, self._mark_verified)

    @classmethod
    def create(
        cls, store: LocalStore, user_id: str, device_id: str, policy: RotationPolicy | None = None
    ) -> Engine:
        Pairwise.create(store, user_id, device_id)
        return cls(store, policy)

    @classmethod
    def load(cls, store: LocalStore, policy: RotationPolicy | None = None) -> Engine:
        return cls(store, policy)

    @staticmethod
    def has_account(store: LocalStore) -> bool:
        return store.get_secret("account", "pickle") is not None

    # -- auth bodies -----------------------------------------------------------------------

    def device_registration(self, display_name: str = "sealchat") -> dict[str, Any]:
        return self.olm.registration(display_name)

    def one_time_keys_upload(self, server_unclaimed: int) -> dict[str, Any] | None:
        return self.olm.keys_upload(server_unclaimed)

    def mark_keys_published(self) -> None:
        self.olm.mark_published()

    # -- devices and trust --------------------------------------------------------------------

    def update_devices(self, user: str, devices: list[dict[str, Any]]) -> list[IdentityChange]:
        keep = self.device_id if user == self.user_id else None
        return self.trust.update(user, devices, keep=keep)

    def users_without_devices(self, users: Iterable[str]) -> list[str]:
        return sorted({u for u in users if not self.trust.known(u)})

    def devices_of(self, user: str) -> list[DeviceInfo]:
        return self.trust.devices(user)

    def held_users(self) -> list[str]:
        return self.trust.held_users()

    def acknowledge_identity_change(self, user: str) -> None:
        self.trust.acknowledge(user)

    def safety_number(self, user: str) -> str:
        mine = [d.ed25519 for d in self.trust.devices(self.user_id)]
        theirs = [d.ed25519 for d in self.trust.devices(user)]
        return safety_number(self.user_id, mine, user, theirs)

    def mark_verified(self, user: str) -> None:
        """The person compared the safety number: trust the devices it covered."""
        for info in self.trust.devices(user):
            self.trust.mark_verified(user, info.device)

    def _lookup(self, ref: DeviceRef) -> DeviceInfo | None:
        return self.trust.device(ref.user, ref.device)

    def _mark_verified(self, ref: DeviceRef) -> None:
        self.trust.mark_verified(ref.user, ref.device)

    # -- pairwise --------------------------------------------------------------------------------

    def missing_sessions(self, devices: Iterable[DeviceRef]) -> list[DeviceRef]:
        renew = self.olm.needs_renewal()
        out = []
        for ref in devices:
            info = self._lookup(ref)
            if info is None or info.removed or ref == self._me.ref:
                continue
            if ref in renew or not self.olm.has_session(info):
                out.append(ref)
        return sorted(set(out))

    @staticmethod
    def claim_request(devices: Iterable[DeviceRef]) -> dict[str, Any]:
        return {"devices": [{"user_id": r.user, "device_id": r.device} for r in devices]}

    def add_claimed_keys(self, claim_response: dict[str, Any]) -> list[DeviceRef]:
        bad: list[DeviceRef] = []
        for user, per_device in (claim_response.get("one_time_keys") or {}).items():
            for device, claimed in per_device.items():
                info = self._lookup(DeviceRef(user, device))
                if info is None or info.removed or not self.olm.add_claimed(info, claimed):
                    bad.append(DeviceRef(user, device))
        return bad

    def encrypt_to_device(self, user: str, device: str, content: dict[str, Any]) -> ToDeviceOut:
        info = self._lookup(DeviceRef(user, device))
        if info is None or not self.olm.has_session(info):
            raise NoSession(f"{user}/{device}")
        return self.olm.queue(info, content)

    def _send_ref(self, ref: DeviceRef, content: dict[str, Any]) -> None:
        self.encrypt_to_device(ref.user, ref.device, content)

    def pending_to_device(self) -> list[ToDeviceOut]:
        return self.olm.pending()

    def mark_to_device_sent(self, msg_ids: Iterable[str]) -> None:
        self.olm.mark_sent(set(msg_ids))

    def decrypt_to_device(self, frame: dict[str, Any]) -> list[Effect]:
        sender, device = str(frame.get("sender", "")), str(frame.get("sender_device", ""))
        info = self._lookup(DeviceRef(sender, device))
        if info is None or info.removed:
            # Kept, not dropped: retried by retry_to_device() once the device list is fetched.
            self.store.put_json("to_device_in", f"{time.time_ns():020d}|{new_msg_id()}", frame)
            return [ToDeviceFailed(sender, device, "unknown_device")]
        try:
            decoded = self.olm.decrypt(info, str(frame.get("ciphertext", "")))
        except PairwiseFailure as exc:
            return [ToDeviceFailed(sender, device, exc.reason)]
        effects: list[Effect] = []
        if decoded.new_session:
            for content in self.rooms.reshare_keys(info.ref):
                self.olm.queue(info, content)
            effects.append(SessionRecovered(sender, device))
        content = decoded.content
        kind = str(content.get("type", ""))
        if kind == "room_key":
            bound = Sender(sender, device, info.curve25519, info.ed25519)
            session_id = self.rooms.receive_key(content, bound)
            if session_id is None:
                effects.append(ToDeviceFailed(sender, device, "room_key_refused"))
            else:
                effects.append(RoomKeyReceived(str(content["room"]), session_id, sender, device))
        elif kind.startswith("sas."):
            effects.extend(self.sas.receive(info.ref, content))
        elif kind != "dummy":
            effects.append(ToDeviceContent(sender, device, content))
        return effects

    def retry_to_device(self) -> list[Effect]:
        effects: list[Effect] = []
        for name, _ in self.store.secrets("to_device_in"):
            frame = self.store.get_json("to_device_in", name)
            sender, device = str(frame.get("sender")), str(frame.get("sender_device"))
            info = self._lookup(DeviceRef(sender, device))
            if info is not None and not info.removed:
                self.store.delete_secret("to_device_in", name)
                effects.extend(self.decrypt_to_device(frame))
        return effects

    # -- membership ------------------------------------------------------------------------

    def expect_membership(
        self, room_id: str, action: str, target: str | None, role: str | None = None
    ) -> None:
        """Record a change this device made, so :meth:`sign_membership` may sign its entry
        (and nothing the server invents). ``action="open"`` covers a 1:1 room's entries."""
        expectations = self._expectations()
        expectations.append([room_id, action, target, role, time.time()])
        self.store.put_json("state", "expect", expectations)

    def _expectations(self) -> list[list[Any]]:
        now = time.time()
        items = self.store.get_json("state", "expect") or []
        return [e for e in items if now - e[4] < EXPECTATION_TTL]

    def sign_membership(self, room_id: str, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        expectations, signatures = self._expectations(), []
        for entry in sorted(entries, key=lambda e: int(e["seq"])):
            if entry.get("actor") != self.user_id or entry.get("signature"):
                continue
            match = self._match(expectations, room_id, entry)
            if match is None:
                continue
            if match[1] != "open" or entry.get("target") != self.user_id:
                expectations.remove(match)  # one entry per expectation ("open" makes two)
            signed = dict(entry, device_id=self.device_id)
            payload = membership_log.entry_payload(room_id, signed)
            signatures.append(
                {
                    "seq": int(entry["seq"]),
                    "device": self.device_id,
                    "signature": self.olm.sign(payload),
                }
            )
        self.store.put_json("state", "expect", expectations)
        return {"signatures": signatures} if signatures else None

    def _match(
        self, expectations: list[list[Any]], room_id: str, entry: dict[str, Any]
    ) -> list[Any] | None:
        action, target, role = entry.get("action"), entry.get("target"), entry.get("role")
        for exp in expectations:
            room, want, want_target, want_role = exp[0], exp[1], exp[2], exp[3]
            if room != room_id:
                continue
            if want == "open":
                if action in ("create", "join") and target in (self.user_id, want_target):
                    return exp
                continue
            if want == action and want_target == target and want_role == role:
                return exp
        return None

    def verify_membership(
        self, room_id: str, kind: str, entries: list[dict[str, Any]]
    ) -> Membership:
        result = membership_log.verify(room_id, kind, entries, self.trust.signing_keys)
        self.store.put_json("membership", room_id, dataclasses.asdict(result))
        return result

    def retry_after_membership(self, room_id: str) -> list[Decrypted | Undecryptable]:
        """Messages held back as ``not_member`` get another try after a new verification."""
        return [
            self.decrypt_room(frame)
            for frame, old in self.rooms.waiting(room_id)
            if old.reason == "not_member"
        ]

    def membership(self, room_id: str) -> Membership | None:
        raw = self.store.get_json("membership", room_id)
        if raw is None:
            return None
        raw["rejected"] = [tuple(r) for r in raw["rejected"]]
        return Membership(**raw)

    def rooms_shared_with(self, user: str) -> list[str]:
        return sorted(
            room
            for room, raw in self.store.secrets("membership")
            if user in json.loads(raw)["members"]
        )

    # -- rooms ------------------------------------------------------------------------------------

    def room_devices(self, room_id: str) -> list[DeviceRef]:
        verified = self.membership(room_id)
        if verified is None:
            raise MembershipUnknown(room_id)
        return [
            d.ref
            for user in sorted(verified.members)
            for d in self.trust.devices(user)
            if d.ref != self._me.ref
        ]

    def encrypt_room(self, room_id: str, content: dict[str, Any]) -> RoomSend:
        verified = self.membership(room_id)
        if verified is None or self.user_id not in verified.members:
            raise MembershipUnknown(room_id)
        held = [u for u in verified.members if self.trust.held(u)]
        if held:
            raise SendingHeld(held)
        infos = [i for i in map(self._lookup, self.room_devices(room_id)) if i is not None]
        identities = {(i.user, i.device, i.curve25519) for i in infos}
        with self.store.transaction():
            session, state = self.rooms.outbound(room_id, identities, set(verified.members))
            shared = {(u, d, curve) for u, d, _, curve in state["shared"]}
            new, skipped = [], []
            for info in infos:
                ref = info.ref
                if (ref.user, ref.device, info.curve25519) in shared:
                    continue
                if ref in self.olm.needs_renewal() or not self.olm.has_session(info):
                    skipped.append(ref)
                    continue
                self.olm.queue(info, self.rooms.key_for(room_id, session))
                state["shared"].append(
                    [ref.user, ref.device, session.message_index, info.curve25519]
                )
                new.append(ref)
            ciphertext = self.rooms.encrypt(room_id, session, content)
            state["count"] += 1
            self.rooms.save_outbound(room_id, session, state)
        return RoomSend(ciphertext, session.session_id, new, skipped)

    def rotate_room(self, room_id: str) -> None:
        self.rooms.forget_outbound(room_id)

    def decrypt_room(self, frame: dict[str, Any]) -> Decrypted | Undecryptable:
        result = self.rooms.decrypt(frame)
        verified = self.membership(str(frame.get("room", "")))
        if (
            isinstance(result, Decrypted)
            and verified is not None
            and result.sender not in verified.ever
        ):
            # A key shared by someone the signed log never admitted: an outsider (with the
            # server's help) writing into the room. Kept, and retried after the next verify.
            result = Undecryptable(
                result.room,
                result.seq,
                result.msg_id,
                result.sender,
                result.sender_device,
                "not_member",
            )
        if isinstance(result, Undecryptable):
            if result.retryable or result.reason == "before_join":
                self.rooms.remember(frame, result)
            return result
        self.rooms.forget(frame)
        info = self._lookup(DeviceRef(result.sender, result.sender_device))
        return dataclasses.replace(result, verified=bool(info and info.verified))

    def retry_undecryptable(self, room_id: str | None = None) -> list[Decrypted | Undecryptable]:
        return [self.decrypt_room(frame) for frame, _ in self.rooms.waiting(room_id)]

    def undecryptable(self, room_id: str) -> list[Undecryptable]:
        """What is still waiting (for display), without trying again."""
        return [result for _, result in self.rooms.waiting(room_id)]

    # -- emoji verification ---------------------------------------------------------------------

    def sas_start(self, user: str, device: str) -> str:
        txn = new_msg_id()
        self.sas.start(DeviceRef(user, device), txn)
        return txn

    def sas_accept(self, txn: str) -> None:
        self.sas.accept(txn)

    def sas_emoji(self, txn: str) -> list[tuple[str, str]] | None:
        return self.sas.emoji(txn)

    def sas_confirm(self, txn: str) -> list[Effect]:
        return list(self.sas.confirm(txn))

    def sas_cancel(self, txn: str, reason: str = "user") -> None:
        self.sas.cancel(txn, reason)
