"""The encrypted local store: passphrase handling, sealing, schema versions, typed tables."""

from __future__ import annotations

import os
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.crypto import KdfParams, LocalStore, StoreCorrupt, WrongPassphrase
from tui.crypto.aead import SealError, SecretBox
from tui.crypto.store import MIGRATIONS

PASS = "a long enough passphrase"


def test_wrong_passphrase_is_a_clear_error(tmp_path):
    LocalStore.open(tmp_path / "p.sqlite3", PASS).close()
    with pytest.raises(WrongPassphrase) as err:
        LocalStore.open(tmp_path / "p.sqlite3", "not it")
    assert "does not unlock" in str(err.value) and "--home" in str(err.value)


def test_no_default_key(tmp_path):
    with pytest.raises(ValueError, match="passphrase"):
        LocalStore.open(tmp_path / "p.sqlite3", "")
    with pytest.raises(ValueError, match="minimum"):
        LocalStore.open(tmp_path / "q.sqlite3", PASS, kdf=KdfParams(memory_kib=1024))


def test_reopen_round_trip_and_file_mode(tmp_path):
    path = tmp_path / "p.sqlite3"
    store = LocalStore.open(path, PASS)
    store.outbox_put("m1", "r1", b"draft one")
    store.outbox_put("m2", "r1", b"draft two")
    store.outbox_remove("m1")
    store.set_last_seq("r1", 41)
    store.history_put("r1", 40, {"sender": "bob", "body": "canary-history-text"})
    store.history_put("r1", 41, {"sender": "bob", "body": "newer"})
    store.put_json("state", "x", {"a": [1, 2]})
    store.set_setting("theme", "dark")
    store.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert b"canary-history-text" not in path.read_bytes()
    store = LocalStore.open(path, PASS)
    assert [(o.msg_id, o.body) for o in store.outbox_list()] == [("m2", b"draft two")]
    assert store.last_seq("r1") == 41 and store.last_seq("nope") == 0
    assert store.all_last_seqs() == {"r1": 41}
    assert store.history("r1") == [
        (40, {"sender": "bob", "body": "canary-history-text"}),
        (41, {"sender": "bob", "body": "newer"}),
    ]
    assert store.history("r1", before=41) == [
        (40, {"sender": "bob", "body": "canary-history-text"})
    ]
    store.history_delete("r1", [40])
    assert [s for s, _ in store.history("r1")] == [41]
    assert store.get_json("state", "x") == {"a": [1, 2]} and store.setting("theme") == "dark"
    store.close()


def test_change_passphrase(tmp_path):
    path = tmp_path / "p.sqlite3"
    store = LocalStore.open(path, PASS)
    store.put_secret("k", "n", b"kept")
    store.change_passphrase("the new passphrase")
    store.close()
    with pytest.raises(WrongPassphrase):
        LocalStore.open(path, PASS)
    store = LocalStore.open(path, "the new passphrase")
    assert store.get_secret("k", "n") == b"kept"
    store.close()


def test_schema_is_versioned_and_newer_is_refused(tmp_path):
    path = tmp_path / "p.sqlite3"
    LocalStore.open(path, PASS).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    conn.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorrupt, match="newer sealchat"):
        LocalStore.open(path, PASS)


def test_row_moved_or_changed_on_disk_is_detected(tmp_path):
    path = tmp_path / "p.sqlite3"
    store = LocalStore.open(path, PASS)
    store.put_secret("olm", "a", b"secret a")
    store.put_secret("olm", "b", b"secret b")
    store.close()
    conn = sqlite3.connect(path)
    blob = conn.execute("SELECT blob FROM secrets WHERE name = 'a'").fetchone()[0]
    conn.execute("UPDATE secrets SET blob = ? WHERE name = 'b'", (blob,))  # swap rows
    conn.commit()
    conn.close()
    store = LocalStore.open(path, PASS)
    assert store.get_secret("olm", "a") == b"secret a"
    with pytest.raises(StoreCorrupt, match="failed authentication"):
        store.get_secret("olm", "b")
    store.close()


def test_nonces_never_repeat_over_10000_seals(tmp_path):
    store = LocalStore.open(tmp_path / "p.sqlite3", PASS)
    seals = [store.seal("history", "r|1", b"the same plaintext") for _ in range(10_000)]
    nonces = {SecretBox.nonce_of(s) for s in seals}
    assert len(nonces) == 10_000 and len(set(seals)) == 10_000
    assert all(store.unseal("history", "r|1", s) == b"the same plaintext" for s in seals[:100])
    store.close()


BOX = SecretBox(os.urandom(32))


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory):
    store = LocalStore.open(tmp_path_factory.mktemp("prop") / "p.sqlite3", PASS)
    yield store
    store.close()


@settings(max_examples=300, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
def test_seal_round_trips(plaintext, aad):
    assert BOX.open(BOX.seal(plaintext, aad), aad) == plaintext


@settings(max_examples=300, deadline=None)
@given(
    plaintext=st.binary(max_size=512),
    aad=st.binary(max_size=32),
    data=st.data(),
)
def test_any_tamper_fails(plaintext, aad, data):
    sealed = bytearray(BOX.seal(plaintext, aad))
    index = data.draw(st.integers(0, len(sealed) - 1))
    flip = data.draw(st.integers(1, 255))
    sealed[index] ^= flip
    with pytest.raises(SealError):
        BOX.open(bytes(sealed), aad)


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=256), aad=st.binary(max_size=32), other=st.binary(max_size=32))
def test_other_row_or_key_fails(plaintext, aad, other):
    sealed = BOX.seal(plaintext, aad)
    if other != aad:
        with pytest.raises(SealError):
            BOX.open(sealed, other)
    with pytest.raises(SealError):
        SecretBox(os.urandom(32)).open(sealed, aad)
    with pytest.raises(SealError):
        BOX.open(sealed[: len(sealed) - 1], aad)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.text(min_size=1, max_size=20),
    name=st.text(max_size=40),
    value=st.binary(max_size=1024),
    flip=st.integers(0, 10_000),
)
def test_store_rows_round_trip_and_reject_tampering(prop_store, kind, name, value, flip):
    store = prop_store
    path = store.path
    store.put_secret(kind, name, value)
    assert store.get_secret(kind, name) == value
    conn = sqlite3.connect(path)
    blob = bytearray(
        conn.execute(
            "SELECT blob FROM secrets WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()[0]
    )
    blob[flip % len(blob)] ^= 0x01
    conn.execute(
        "UPDATE secrets SET blob = ? WHERE kind = ? AND name = ?", (bytes(blob), kind, name)
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorrupt):
        store.get_secret(kind, name)
