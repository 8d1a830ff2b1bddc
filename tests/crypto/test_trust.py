"""Trust on first use, holds on key change, safety numbers and emoji verification (SAS)."""

from __future__ import annotations

import re

import pytest

from tests.crypto.sim import SimDevice, group
from tui.crypto import SendingHeld
from tui.crypto.types import SasUpdate


def replace_device(server, tmp_path, user, device):
    """The server (or a reinstall) swaps a device's keys under the same device id."""
    server.devices[user] = [d for d in server.devices[user] if d["device_id"] != device]
    server.otks.pop((user, device), None)  # deleting a device deletes its unclaimed keys
    server.fallback.pop((user, device), None)
    return SimDevice(server, tmp_path / "new", user, device)


def test_key_change_holds_sending_until_acknowledged(server, make_device, tmp_path):
    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    alice.send("g", "first")
    bob2 = replace_device(server, tmp_path, "bob", "BOB01")
    [change] = alice.refresh("bob")
    assert (change.kind, change.held) == ("key_changed", True)
    assert "acknowledge" in str(change)
    with pytest.raises(SendingHeld) as held:
        alice.send("g", "second")
    assert held.value.users == ["bob"] and "acknowledge the change" in str(held.value)
    assert alice.engine.held_users() == ["bob"]
    alice.engine.acknowledge_identity_change("bob")
    sent, _ = alice.send("g", "second")
    assert bob2.ref in sent.shared_with  # the new key gets the room key, after the ack
    assert bob2.texts("g") == ["<no_session>", "second"]
    bob2.store.close()


def test_first_devices_are_trusted_new_ones_reported(server, make_device):
    alice, _ = make_device("alice"), make_device("bob")
    assert alice.refresh("bob") == []  # first use
    make_device("bob", "BOBPHONE")
    [change] = alice.refresh("bob")
    assert (change.kind, change.held) == ("new_device", False)


def test_new_device_of_a_verified_user_is_held(server, make_device):
    alice, _ = make_device("alice"), make_device("bob")
    alice.refresh("bob")
    alice.engine.trust.mark_verified("bob", "BOB01")
    make_device("bob", "BOBPHONE")
    [change] = alice.refresh("bob")
    assert (change.kind, change.held) == ("new_device", True)


def test_bad_device_signature_is_ignored(server, make_device):
    alice, _ = make_device("alice"), make_device("bob")
    server.devices["bob"][0]["keys"]["curve25519"] = alice.engine.curve25519
    [change] = alice.refresh("bob")
    assert change.kind == "bad_signature"
    assert alice.engine.devices_of("bob") == []


def test_safety_numbers_match_and_change_with_keys(server, make_device, tmp_path):
    alice, bob = make_device("alice"), make_device("bob")
    alice.refresh("bob")
    bob.refresh("alice")
    number = alice.engine.safety_number("bob")
    assert re.fullmatch(r"(\d{5} ){11}\d{5}", number)
    assert bob.engine.safety_number("alice") == number
    alice.engine.mark_verified("bob")
    assert [d.verified for d in alice.engine.devices_of("bob")] == [True]
    bob2 = replace_device(server, tmp_path, "bob", "BOB01")
    [change] = alice.refresh("bob")
    assert change.held and alice.engine.safety_number("bob") != number
    assert [d.verified for d in alice.engine.devices_of("bob")] == [False]  # new key: unverified
    bob2.store.close()


def run_sas(alice, bob):
    alice.refresh("bob")
    bob.refresh("alice")
    alice.ensure_sessions([bob.ref])
    txn = alice.engine.sas_start("bob", "BOB01")
    alice.flush()
    [requested] = bob.receive()
    assert isinstance(requested, SasUpdate) and requested.state == "requested"
    bob.engine.sas_accept(txn)
    bob.flush()
    assert alice.receive() == []  # accept → alice sends her key
    [bob_sees] = bob.receive()  # bob gets alice's key, answers with his
    [alice_sees] = alice.receive()
    assert bob_sees.state == alice_sees.state == "keys_exchanged"
    return txn, alice_sees, bob_sees


def test_sas_shows_the_same_emoji_and_verifies(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    txn, alice_sees, bob_sees = run_sas(alice, bob)
    assert alice_sees.emoji == bob_sees.emoji and len(alice_sees.emoji) == 7
    assert alice.engine.sas_emoji(txn) == bob.engine.sas_emoji(txn) == alice_sees.emoji
    assert alice.engine.sas_confirm(txn) == []
    alice.flush()
    bob.receive()  # bob checks alice's MAC; not done until bob confirms too
    [done_bob] = bob.engine.sas_confirm(txn)
    bob.flush()
    [done_alice] = alice.receive()
    assert done_bob.state == done_alice.state == "verified"
    assert [d.verified for d in alice.engine.devices_of("bob")] == [True]
    assert [d.verified for d in bob.engine.devices_of("alice")] == [True]


def test_sas_with_a_wrong_mac_is_cancelled(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    txn, _, _ = run_sas(alice, bob)
    # A man in the middle would not know the SAS secret: send a MAC made with another key.
    alice.engine.sas.me = alice.engine.sas.me.__class__(
        "alice", "ALICE01", bob.engine.ed25519, alice.engine.curve25519
    )
    alice.engine.sas_confirm(txn)
    alice.flush()
    [update] = bob.receive()
    assert update.state == "cancelled" and "verification failed" in (update.reason or "")
    assert [d.verified for d in bob.engine.devices_of("alice")] == [False]
