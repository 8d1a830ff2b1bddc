"""Interactive emoji verification (SAS) over Olm-encrypted to-device messages.

Flow (initiator A, responder B): A ``sas.start`` → B ``sas.accept`` (commits to B's SAS key) →
A ``sas.key`` → B ``sas.key`` → both show 7 emoji → each person confirms → each side sends
``sas.mac`` (HMAC of its Ed25519 device key under the SAS secret) → a side that confirmed and
checked the other's MAC marks the device verified. vodozemac does the key agreement and MACs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import vodozemac

from backend.protocol.signing import canonical_json
from tui.crypto.errors import SasError
from tui.crypto.sas_emoji import EMOJI
from tui.crypto.types import DeviceInfo, DeviceRef, SasUpdate

Send = Callable[[DeviceRef, dict[str, Any]], None]


@dataclass
class _Flow:
    txn: str
    peer: DeviceRef
    initiator: bool
    start: dict[str, Any]
    sas: vodozemac.Sas = field(default_factory=vodozemac.Sas)
    state: str = "started"
    commitment: str | None = None
    their_key: str | None = None
    established: vodozemac.EstablishedSas | None = None
    confirmed: bool = False
    their_mac_ok: bool = False


def _commit(key: str, start: dict[str, Any]) -> str:
    return hashlib.sha256(key.encode() + canonical_json(start)).hexdigest()


class SasFlows:
    def __init__(
        self,
        me: DeviceInfo,
        send: Send,
        lookup: Callable[[DeviceRef], DeviceInfo | None],
        mark_verified: Callable[[DeviceRef], None],
    ) -> None:
        self.me, self._send, self._lookup, self._mark = me, send, lookup, mark_verified
        self._flows: dict[str, _Flow] = {}

    def start(self, peer: DeviceRef, txn: str) -> None:
        content = {"type": "sas.start", "txn": txn, "from_device": self.me.device}
        # Sent first: without an Olm session this raises ``NoSession`` and leaves no flow
        # behind (the caller claims a key and starts again).
        self._send(peer, content)
        self._flows[txn] = _Flow(txn, peer, True, content)

    def accept(self, txn: str) -> None:
        flow = self._flow(txn, "requested")
        flow.state = "accepted"
        commitment = _commit(flow.sas.public_key.to_base64(), flow.start)
        self._send(flow.peer, {"type": "sas.accept", "txn": txn, "commitment": commitment})

    def emoji(self, txn: str) -> list[tuple[str, str]] | None:
        flow = self._flows.get(txn)
        if flow is None or flow.established is None:
            return None
        indices = flow.established.bytes(self._info(flow)).emoji_indices
        return [EMOJI[i] for i in indices]

    def confirm(self, txn: str) -> list[SasUpdate]:
        flow = self._flow(txn, "keys_exchanged")
        assert flow.established is not None
        key_id = f"ed25519:{self.me.device}"
        info = self._mac_info(self.me.ref, flow.peer, txn)
        self._send(
            flow.peer,
            {
                "type": "sas.mac",
                "txn": txn,
                "mac": {key_id: flow.established.calculate_mac(self.me.ed25519, info + key_id)},
                "keys": flow.established.calculate_mac(key_id, info + "KEY_IDS"),
            },
        )
        flow.confirmed = True
        return self._maybe_done(flow)

    def cancel(self, txn: str, reason: str) -> SasUpdate | None:
        flow = self._flows.pop(txn, None)
        if flow is None:
            return None
        self._send(flow.peer, {"type": "sas.cancel", "txn": txn, "reason": reason})
        return SasUpdate(txn, flow.peer.user, flow.peer.device, "cancelled", reason=reason)

    def receive(self, sender: DeviceRef, content: dict[str, Any]) -> list[SasUpdate]:
        """Handle one decrypted ``sas.*`` content from an Olm-authenticated device."""
        kind, txn = content.get("type"), str(content.get("txn", ""))
        if kind == "sas.start":
            if txn in self._flows:
                return []
            self._flows[txn] = _Flow(txn, sender, False, dict(content), state="requested")
            return [SasUpdate(txn, sender.user, sender.device, "requested")]
        flow = self._flows.get(txn)
        if flow is None or flow.peer != sender:
            return []
        if kind == "sas.cancel":
            self._flows.pop(txn, None)
            reason = str(content.get("reason", "cancelled"))
            return [SasUpdate(txn, sender.user, sender.device, "cancelled", reason=reason)]
        try:
            return self._step(flow, str(kind), content)
        except (SasError, ValueError) as exc:
            update = self.cancel(txn, f"verification failed: {exc}")
            return [update] if update else []

    def _step(self, flow: _Flow, kind: str, content: dict[str, Any]) -> list[SasUpdate]:
        mine = flow.sas.public_key.to_base64()
        if kind == "sas.accept" and flow.initiator and flow.state == "started":
            flow.commitment, flow.state = str(content.get("commitment")), "accepted"
            self._send(flow.peer, {"type": "sas.key", "txn": flow.txn, "key": mine})
            return []
        if kind == "sas.key" and flow.state == "accepted" and flow.their_key is None:
            key = str(content.get("key"))
            if flow.initiator and _commit(key, flow.start) != flow.commitment:
                raise SasError("the other device's key does not match its commitment")
            flow.their_key = key
            flow.established = flow.sas.diffie_hellman(
                vodozemac.Curve25519PublicKey.from_base64(key)
            )
            if not flow.initiator:
                self._send(flow.peer, {"type": "sas.key", "txn": flow.txn, "key": mine})
            flow.state = "keys_exchanged"
            return [
                SasUpdate(
                    flow.txn,
                    flow.peer.user,
                    flow.peer.device,
                    "keys_exchanged",
                    emoji=self.emoji(flow.txn),
                )
            ]
        if kind == "sas.mac" and flow.established is not None:
            peer = self._lookup(flow.peer)
            if peer is None:
                raise SasError("the other device is unknown")
            key_id = f"ed25519:{peer.device}"
            info = self._mac_info(flow.peer, self.me.ref, flow.txn)
            macs = content.get("mac") or {}
            flow.established.verify_mac(key_id, info + "KEY_IDS", str(content.get("keys")))
            flow.established.verify_mac(peer.ed25519, info + key_id, str(macs.get(key_id)))
            flow.their_mac_ok = True
            return self._maybe_done(flow)
        raise SasError(f"unexpected {kind} in state {flow.state}")

    def _maybe_done(self, flow: _Flow) -> list[SasUpdate]:
        if not (flow.confirmed and flow.their_mac_ok):
            return []
        self._flows.pop(flow.txn, None)
        self._mark(flow.peer)
        return [SasUpdate(flow.txn, flow.peer.user, flow.peer.device, "verified")]

    def _flow(self, txn: str, state: str) -> _Flow:
        flow = self._flows.get(txn)
        if flow is None or flow.state != state:
            raise SasError(f"no verification {txn} waiting to be {state}: start again")
        return flow

    def _info(self, flow: _Flow) -> str:
        mine, theirs = flow.sas.public_key.to_base64(), str(flow.their_key)
        a, b = (self.me.ref, flow.peer) if flow.initiator else (flow.peer, self.me.ref)
        a_key, b_key = (mine, theirs) if flow.initiator else (theirs, mine)
        return f"SEALCHAT_SAS_V1|{a.user}|{a.device}|{a_key}|{b.user}|{b.device}|{b_key}|{flow.txn}"

    @staticmethod
    def _mac_info(sender: DeviceRef, receiver: DeviceRef, txn: str) -> str:
        return (
            f"SEALCHAT_SAS_MAC_V1|{sender.user}|{sender.device}|"
            f"{receiver.user}|{receiver.device}|{txn}|"
        )
