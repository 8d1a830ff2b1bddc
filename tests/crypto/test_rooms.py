"""Two and three simulated devices exchanging room messages through the engine."""

from __future__ import annotations

import base64
import json

from tests.crypto.sim import Room, dump, group
from tui.crypto import Decrypted, RotationPolicy, Undecryptable


def open_direct(server, room, opener, other):
    server.rooms[room] = Room("direct")
    opener.engine.expect_membership(room, "open", other.user)
    server.append_log(room, "create", opener.user, opener.user)
    server.append_log(room, "join", opener.user, other.user)
    opener.sign(room)


def test_direct_room_both_ways(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    open_direct(server, "r1", alice, bob)
    alice.send("r1", "hello bob")
    bob.send("r1", "hi alice")
    assert bob.texts("r1") == ["hello bob", "hi alice"]
    assert alice.texts("r1") == ["hello bob", "hi alice"]  # her own message too


def test_group_of_three(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    alice.send("g", "one")
    bob.send("g", "two")
    carol.send("g", "three")
    for dev in (alice, bob, carol):
        assert dev.texts("g") == ["one", "two", "three"]
    results = bob.read("g")
    assert all(isinstance(r, Decrypted) for r in results)
    assert [r.verified for r in results] == [False, True, False]  # only our own device
    assert [r.sender for r in results] == ["alice", "bob", "carol"]


def test_late_joiner_cannot_read_earlier(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob)
    alice.send("g", "before carol")
    alice.act("g", "invite", "carol")
    carol.act("g", "join", "carol")
    alice.send("g", "after carol")
    assert carol.texts("g") == ["<no_session>", "after carol"]
    assert bob.texts("g") == ["before carol", "after carol"]


def test_removed_member_cannot_read_later(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    first, _ = alice.send("g", "all of us")
    assert carol.texts("g") == ["all of us"]
    alice.act("g", "kick", "carol")
    second, _ = alice.send("g", "without carol")
    assert second.session_id != first.session_id  # mandatory rotation
    assert carol.ref not in second.shared_with and bob.ref in second.shared_with
    assert server.take("carol", "CAROL01") == []  # carol was sent no key
    assert carol.texts("g") == ["all of us", "<no_session>"]
    assert bob.texts("g") == ["all of us", "without carol"]


def test_rotation_every_n_messages(server, make_device):
    alice = make_device("alice", policy=RotationPolicy(messages=3))
    bob = make_device("bob")
    group(server, "g", alice, bob)
    ids = [alice.send("g", str(i))[0].session_id for i in range(7)]
    assert len(set(ids[0:3])) == 1 and ids[3] != ids[2] and ids[6] != ids[5]
    assert bob.texts("g") == [str(i) for i in range(7)]


def test_rotation_after_the_age_limit(server, make_device):
    alice = make_device("alice", policy=RotationPolicy(seconds=0))
    bob = make_device("bob")
    group(server, "g", alice, bob)
    a, _ = alice.send("g", "a")
    b, _ = alice.send("g", "b")
    assert a.session_id != b.session_id


def _flip_byte(ciphertext: str) -> str:
    envelope = json.loads(ciphertext)
    raw = bytearray(base64.b64decode(envelope["body"] + "=="))
    raw[len(raw) // 2] ^= 0x01
    envelope["body"] = base64.b64encode(bytes(raw)).decode().rstrip("=")
    return json.dumps(envelope)


def test_tampered_ciphertext_is_rejected(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    _, frame = alice.send("g", "exact words")
    frame["ciphertext"] = _flip_byte(frame["ciphertext"])
    [result] = bob.read("g")
    assert isinstance(result, Undecryptable) and result.reason == "tampered"
    assert "changed in transit" in str(result)


def test_replay_rejected_but_same_seq_is_a_duplicate(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    _, frame = alice.send("g", "pay 10 coins")
    server.post("g", "alice", "ALICE01", frame["ciphertext"])  # the server replays it
    first, replay = bob.read("g")
    assert isinstance(first, Decrypted) and first.content["body"] == "pay 10 coins"
    assert isinstance(replay, Undecryptable) and replay.reason == "replay"
    again = bob.engine.decrypt_room(dump(frame))  # same seq seen again: a duplicate
    assert isinstance(again, Decrypted) and again.seq == first.seq


def test_forged_sender_is_rejected(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    group(server, "g", alice, bob, carol)
    _, frame = alice.send("g", "from alice")
    frame.update(sender="carol", device="CAROL01")  # the server re-attributes it
    [result] = bob.read("g")
    assert isinstance(result, Undecryptable) and result.reason == "sender_mismatch"
    assert "does not match" in str(result)


def test_undecryptable_is_kept_and_retried_when_the_key_arrives(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    _, frame = alice.send("g", "late key")
    early = bob.engine.decrypt_room(frame)  # before reading the to-device queue
    assert isinstance(early, Undecryptable) and early.reason == "no_session"
    assert str(early) == "cannot decrypt yet (waiting for keys from alice/ALICE01)"
    assert bob.engine.undecryptable("g") == [early]
    effects = bob.receive()  # alice's device is unknown at first: fetched, then retried
    assert [type(e).__name__ for e in effects] == ["ToDeviceFailed", "RoomKeyReceived"]
    assert effects[0].reason == "unknown_device"
    [retried] = bob.engine.retry_undecryptable("g")
    assert isinstance(retried, Decrypted) and retried.content["body"] == "late key"
    assert bob.engine.undecryptable("g") == []


def test_undecryptable_survives_a_restart(server, make_device, tmp_path):
    from tui.crypto import Engine, LocalStore

    alice, bob = make_device("alice"), make_device("bob")
    group(server, "g", alice, bob)
    _, frame = alice.send("g", "persisted")
    bob.engine.decrypt_room(frame)
    bob.store.close()
    bob.store = LocalStore.open(tmp_path / "bob-BOB01.sqlite3", "correct horse battery staple")
    bob.engine = Engine.load(bob.store)
    bob.receive()
    [retried] = bob.engine.retry_undecryptable()
    assert isinstance(retried, Decrypted) and retried.content["body"] == "persisted"
