"""Device keys on the auth service, pairwise Olm sessions, and recovery of a broken session."""

from __future__ import annotations

import json

from tests.crypto.sim import group
from tests.crypto.test_rooms import open_direct
from tui.crypto import (
    Decrypted,
    Engine,
    NoAccount,
    SessionRecovered,
    ToDeviceContent,
    ToDeviceFailed,
)


def test_keys_published_and_replenished(server, make_device):
    alice = make_device("alice")
    assert len(server.otks[("alice", "ALICE01")]) == 50 and ("alice", "ALICE01") in server.fallback
    assert alice.engine.one_time_keys_upload(50) is None  # nothing to do
    body = alice.engine.one_time_keys_upload(10)  # low: top up to 50
    assert body is not None and len(body["one_time_keys"]) == 40
    assert server.upload("alice", body) == 90
    alice.engine.mark_keys_published()
    assert alice.engine.one_time_keys_upload(90) is None


def test_retried_upload_resends_the_same_keys(server, make_device):
    alice = make_device("alice")
    first = alice.engine.one_time_keys_upload(0)
    again = alice.engine.one_time_keys_upload(0)  # the upload failed: not marked published
    assert first == again


def test_claimed_key_with_a_bad_signature_is_refused(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    alice.refresh("bob")
    claimed = server.claim({"devices": [{"user_id": "bob", "device_id": "BOB01"}]})
    claimed["one_time_keys"]["bob"]["BOB01"]["key"] = alice.engine.curve25519
    assert alice.engine.add_claimed_keys(claimed) == [bob.ref]
    assert alice.engine.missing_sessions([bob.ref]) == [bob.ref]


def test_fallback_key_is_used_when_one_time_keys_run_out(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    server.otks[("bob", "BOB01")].clear()
    open_direct(server, "d", alice, bob)
    alice.send("d", "via the fallback key")
    assert bob.texts("d") == ["via the fallback key"]


def test_to_device_names_its_recipient(server, make_device):
    alice, bob, carol = make_device("alice"), make_device("bob"), make_device("carol")
    alice.refresh("bob", "carol")
    alice.ensure_sessions([bob.ref])
    alice.engine.encrypt_to_device("bob", "BOB01", {"type": "hello", "n": 1})
    alice.flush()
    [frame] = server.take("bob", "BOB01")
    server.queues[("carol", "CAROL01")] = [frame]  # the server redirects it to carol
    carol.refresh("alice")
    [effect] = carol.receive()
    assert isinstance(effect, ToDeviceFailed) and effect.reason in ("tampered", "sender_mismatch")
    server.queues[("bob", "BOB01")] = [dict(frame, sender="carol", sender_device="CAROL01")]
    bob.refresh("carol")
    [effect] = bob.receive()
    assert isinstance(effect, ToDeviceFailed) and effect.reason == "sender_mismatch"


def test_wedged_session_is_replaced_and_nothing_is_lost(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    open_direct(server, "d", alice, bob)
    alice.send("d", "one")
    assert bob.texts("d") == ["one"]
    bob.send("d", "two")  # bob answers over the same Olm session: it is now established
    assert alice.texts("d") == ["one", "two"]
    for name, _ in bob.store.secrets("olm"):  # bob loses his pairwise session state
        bob.store.delete_secret("olm", name)
    alice.engine.rotate_room("d")
    alice.send("d", "three")  # its room key travels over the session bob lost
    effects = bob.receive()
    assert [(type(e), getattr(e, "reason", None)) for e in effects] == [(ToDeviceFailed, "wedged")]
    assert bob.texts("d")[2] == "<no_session>"
    assert bob.engine.missing_sessions([alice.ref]) == [alice.ref]
    bob.ensure_sessions([alice.ref])  # new session; a dummy tells alice
    assert isinstance(alice.receive()[0], SessionRecovered)  # alice re-shares her room keys
    bob.receive()
    retried = bob.engine.retry_undecryptable("d")
    assert [r.content["body"] for r in retried if isinstance(r, Decrypted)] == ["three"]
    assert bob.texts("d") == ["one", "two", "three"]
    bob.send("d", "four")
    assert alice.texts("d") == ["one", "two", "three", "four"]


def test_engine_load_needs_an_account(server, make_device, tmp_path):
    from tui.crypto import LocalStore

    store = LocalStore.open(tmp_path / "empty.sqlite3", "pass phrase")
    assert not Engine.has_account(store)
    try:
        Engine.load(store)
    except NoAccount as exc:
        assert "log in" in str(exc)
    else:
        raise AssertionError("Engine.load on an empty store must fail")
    store.close()


def test_group_keys_reach_every_device_of_a_user(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    bob_phone = make_device("bob", "BOBPHONE")
    group(server, "g", alice, bob)
    sent, _ = alice.send("g", "to both bob devices")
    assert set(sent.shared_with) == {bob.ref, bob_phone.ref}
    assert bob_phone.texts("g") == ["to both bob devices"]


def test_replayed_to_device_does_not_churn_sessions(server, make_device):
    alice, bob = make_device("alice"), make_device("bob")
    open_direct(server, "d", alice, bob)
    alice.send("d", "one")
    bob.receive()
    bob.send("d", "two")
    alice.receive()  # alice's session now sends normal (non-pre-key) messages
    alice.engine.encrypt_to_device("bob", "BOB01", {"type": "ping"})
    alice.flush()
    [frame] = server.take("bob", "BOB01")
    assert json.loads(frame["ciphertext"])["type"] == 1
    assert isinstance(bob.engine.decrypt_to_device(frame)[0], ToDeviceContent)
    assert isinstance(bob.engine.decrypt_to_device(frame)[0], ToDeviceFailed)  # a replay
    bob.ensure_sessions([alice.ref])
    assert isinstance(bob.engine.decrypt_to_device(frame)[0], ToDeviceFailed)
    assert bob.engine.missing_sessions([alice.ref]) == []  # at most one renewal an hour


def test_my_own_new_device_is_reported_not_held(server, make_device):
    bob = make_device("bob")
    make_device("bob", "BOBPHONE")
    [change] = bob.refresh("bob")
    assert (change.kind, change.held) == ("new_device", False)
    assert bob.engine.held_users() == []


def test_fallback_key_is_replaced_weekly(server, make_device):
    alice = make_device("alice")
    first = server.fallback[("alice", "ALICE01")]["key"]
    assert alice.engine.one_time_keys_upload(50) is None
    alice.store.put_json("account", "fallback", 0)  # as if made long ago
    body = alice.engine.one_time_keys_upload(50)
    assert body is not None and body["fallback_key"]["key"] != first
    server.upload("alice", body)
    alice.engine.mark_keys_published()
    assert server.fallback[("alice", "ALICE01")]["key"] != first
