"""The signed membership log: only validly signed entries admit anyone to a room's keys."""

from __future__ import annotations

from tests.crypto.sim import Room, group
from tui.crypto.membership import entry_payload


def test_honest_log_admits_everyone(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    m = carol.verify("g")
    assert m.members == {"alice": "admin", "bob": "member", "carol": "member"}
    assert m.pending == [] and m.rejected == [] and m.last_seq == 5


def test_server_injected_member_gets_no_keys(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    mallory = make_device("mallory")
    group(server, "g", alice, bob)
    # The server writes "alice invited mallory, mallory joined" without alice's signature.
    server.append_log("g", "invite", "alice", "mallory")
    mallory.act("g", "join", "mallory")  # mallory signs her own join honestly
    alice.sign("g")  # alice's client refuses to sign an invite she never made
    assert "signature" not in server.rooms["g"].log[3]
    m = alice.verify("g")
    assert "mallory" not in m.members and m.pending == [4, 5]
    sent, _ = alice.send("g", "secret plans")
    assert mallory.ref not in sent.shared_with
    assert server.take("mallory", "MALLORY01") == []
    assert mallory.texts("g") == ["<no_session>"]
    assert bob.texts("g") == ["secret plans"]


def test_wrongly_signed_entries_are_rejected(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    mallory = make_device("mallory")
    group(server, "g", alice, bob)
    invite = server.append_log("g", "invite", "alice", "mallory")
    # Signed by mallory's key but attributed to alice's device: does not verify.
    invite["device_id"] = "ALICE01"
    invite["signature"] = mallory.engine.olm.sign(entry_payload("g", invite))
    forged = server.append_log("g", "invite", "alice", "eve")
    forged["device_id"] = "MALLORY01"  # a device that is not alice's
    forged["signature"] = mallory.engine.olm.sign(entry_payload("g", forged))
    mallory.act("g", "join", "mallory")
    m = bob.verify("g")
    assert "mallory" not in m.members
    assert [seq for seq, _ in m.rejected] == [4, 5, 6]
    assert m.rejected[0][1] == "bad signature"
    assert "unknown device" in m.rejected[1][1]
    assert "without a valid invite" in m.rejected[2][1]
    sent, _ = bob.send("g", "for alice only")
    assert sent.shared_with == [alice.ref]


def test_signature_bound_to_room_and_seq(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    server.rooms["h"] = Room("group")
    alice.act("h", "create", "alice")
    # The server copies bob's signed join from room g into room h.
    copied = dict(server.rooms["g"].log[2], seq=2)
    server.rooms["h"].log.append(copied)
    m = alice.verify("h")
    assert m.members == {"alice": "admin"} and m.rejected == [(2, "bad signature")]


def test_removals_apply_even_unsigned(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    server.append_log("g", "kick", "alice", "carol")  # unsigned: still a removal
    m = bob.verify("g")
    assert set(m.members) == {"alice", "bob"}
    sent, _ = bob.send("g", "no carol")
    assert carol.ref not in sent.shared_with


def test_rules_only_admins_kick_promote(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    bob.act("g", "role", "bob", "admin")  # bob is not an admin: rejected
    m = carol.verify("g")
    assert m.members["bob"] == "member" and m.rejected[-1][1] == "bob is not an admin"
    alice.act("g", "role", "bob", "admin")
    assert carol.verify("g").members["bob"] == "admin"


def test_heir_becomes_admin_when_last_admin_leaves(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    alice.act("g", "leave", "alice")
    server.append_log("g", "role", "alice", "bob", "admin")  # the server's automatic heir
    m = carol.verify("g")
    assert m.members == {"bob": "admin", "carol": "member"} and m.rejected == []


def test_direct_room_admits_only_the_pair(server, make_device):
    alice, bob, mallory = make_device("alice"), make_device("bob"), make_device("mallory")
    server.rooms["d"] = Room("direct")
    alice.engine.expect_membership("d", "open", "bob")
    server.append_log("d", "create", "alice", "alice")
    server.append_log("d", "join", "alice", "bob")
    alice.sign("d")
    mallory.engine.expect_membership("d", "join", "mallory")
    server.append_log("d", "join", "mallory", "mallory")
    mallory.sign("d")
    m = bob.verify("d")
    assert set(m.members) == {"alice", "bob"}
    assert m.rejected == [(3, "a 1:1 room admits only its two people")]


def test_expectations_are_used_once(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    make_device("carol")
    group(server, "g", alice, bob)
    alice.act("g", "invite", "carol")
    server.append_log("g", "invite", "alice", "carol")  # a second, forged copy
    alice.sign("g")
    log = server.rooms["g"].log
    assert "signature" in log[3] and "signature" not in log[4]


def test_membership_survives_reload(server, make_device):
    from tui.crypto import Engine

    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    before = alice.verify("g")
    assert Engine.load(alice.store).membership("g") == before


def test_open_expectation_signs_nothing_in_other_rooms(server, make_device):
    alice = make_device("alice")
    alice.engine.expect_membership("d", "open", "bob")
    server.rooms["g"] = Room("group")
    server.append_log("g", "create", "alice", "alice")  # invented by the server
    assert alice.engine.sign_membership("g", server.rooms["g"].log) is None


def test_rooms_shared_with_a_user(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g1", alice, bob)
    group(server, "g2", alice, carol)
    alice.verify("g1")
    alice.verify("g2")
    assert alice.engine.rooms_shared_with("bob") == ["g1"]
    assert alice.engine.rooms_shared_with("alice") == ["g1", "g2"]


def test_outsider_cannot_write_into_a_room(server, make_device):
    alice, bob, mallory = make_device("alice"), make_device("bob"), make_device("mallory")
    group(server, "g", alice, bob)
    bob.verify("g")
    # mallory (never admitted) shares a Megolm key for room g with bob over a real Olm channel,
    # and the server posts her message into the room.
    mallory.refresh("bob")
    mallory.ensure_sessions([bob.ref])
    rooms = mallory.engine.rooms
    session, _ = rooms.outbound("g", set(), {"mallory"})
    mallory.engine.olm.queue(
        mallory.engine.trust.device("bob", "BOB01"), rooms.key_for("g", session)
    )
    mallory.flush()
    server.post("g", "mallory", "MALLORY01", rooms.encrypt("g", session, {"body": "fake"}))
    [result] = bob.read("g")
    assert result.reason == "not_member" and "not a verified member" in str(result)


def test_message_from_a_member_not_yet_verified_is_retried(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob)
    bob.verify("g")  # before carol joins: bob's view is stale
    alice.act("g", "invite", "carol")
    carol.act("g", "join", "carol")
    carol.send("g", "hi all")
    [early] = bob.read("g")
    assert early.reason == "not_member"
    bob.verify("g")
    [later] = bob.engine.retry_after_membership("g")
    assert later.content == {"body": "hi all"}
