"""Attachments: chunked AES-256-GCM with a hash of the ciphertext; nothing corrupt is saved."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.crypto import AttachmentCorrupt, FileKey, decrypt_file, encrypt_file, is_expired
from tui.crypto.attachments import CHUNK, TAG, encrypt_stream
from tui.crypto.expiry import expires_at


def roundtrip(tmp_path, data: bytes) -> tuple[FileKey, bytes]:
    src, enc, out = tmp_path / "a", tmp_path / "a.enc", tmp_path / "a.out"
    src.write_bytes(data)
    key = encrypt_file(src, enc)
    decrypt_file(enc, out, FileKey.from_dict(key.to_dict()))
    return key, out.read_bytes()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_round_trip_sizes(tmp_path, size):
    data = os.urandom(size)
    key, back = roundtrip(tmp_path, data)
    assert back == data and key.size == size
    ciphertext = (tmp_path / "a.enc").read_bytes()
    assert len(ciphertext) == key.ciphertext_size()
    if size >= 16:  # a shorter run of bytes turns up in random bytes by chance (1 byte: 6%)
        assert data[:64] not in ciphertext


@pytest.mark.parametrize("size", [0, 1, 15])
def test_the_same_file_twice_gets_a_fresh_key_and_different_ciphertext(tmp_path, size):
    src = tmp_path / "a"
    src.write_bytes(os.urandom(size))
    first, second = encrypt_file(src, tmp_path / "1.enc"), encrypt_file(src, tmp_path / "2.enc")
    assert (first.key, first.nonce_prefix) != (second.key, second.nonce_prefix)
    assert (tmp_path / "1.enc").read_bytes() != (tmp_path / "2.enc").read_bytes()


def _corrupt(tmp_path, mutate) -> None:
    src, enc, out = tmp_path / "b", tmp_path / "b.enc", tmp_path / "b.out"
    src.write_bytes(b"canary file contents " * 10_000)
    key = encrypt_file(src, enc)
    enc.write_bytes(mutate(enc.read_bytes()))
    with pytest.raises(AttachmentCorrupt):
        decrypt_file(enc, out, key)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sealchat-")] == []


def test_corrupted_byte_rejected(tmp_path):
    _corrupt(tmp_path, lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:])


def test_truncation_at_a_chunk_boundary_rejected(tmp_path):
    _corrupt(tmp_path, lambda b: b[: CHUNK + TAG])


def test_reordered_chunks_rejected(tmp_path):
    n = CHUNK + TAG
    _corrupt(tmp_path, lambda b: b[n : 2 * n] + b[:n] + b[2 * n :])


def test_wrong_hash_rejected_before_decrypting(tmp_path):
    src, enc, out = tmp_path / "c", tmp_path / "c.enc", tmp_path / "c.out"
    src.write_bytes(b"x" * 10)
    key = encrypt_file(src, enc)
    bad = FileKey(key.key, key.nonce_prefix, "0" * 64, key.size, key.chunk_size)
    with pytest.raises(AttachmentCorrupt, match="checksum"):
        decrypt_file(enc, out, bad)
    assert not out.exists()


def test_truncation_with_a_forged_key_record_rejected(tmp_path):
    """Even if the hash and size were forged to match a cut file, the final-chunk flag fails."""
    import hashlib

    src, enc, out = tmp_path / "d", tmp_path / "d.enc", tmp_path / "d.out"
    src.write_bytes(os.urandom(2 * CHUNK + 5))
    key = encrypt_file(src, enc)
    cut = enc.read_bytes()[: CHUNK + TAG]
    enc.write_bytes(cut)
    forged = FileKey(key.key, key.nonce_prefix, hashlib.sha256(cut).hexdigest(), CHUNK, CHUNK)
    with pytest.raises(AttachmentCorrupt, match="chunk 0"):
        decrypt_file(enc, out, forged)


def test_unknown_format_refused():
    with pytest.raises(AttachmentCorrupt, match="update sealchat"):
        FileKey.from_dict({"alg": "rot13"})


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3000), chunk=st.integers(1, 700))
def test_stream_format_round_trip_and_tamper(tmp_path_factory, data, chunk):
    out = io.BytesIO()
    key = encrypt_stream(io.BytesIO(data), out, chunk_size=chunk)
    d = tmp_path_factory.mktemp("h")
    (d / "e").write_bytes(out.getvalue())
    decrypt_file(d / "e", d / "o", key)
    assert (d / "o").read_bytes() == data
    blob = bytearray(out.getvalue())
    blob[len(blob) // 2] ^= 0x80
    (d / "e").write_bytes(bytes(blob))
    with pytest.raises(AttachmentCorrupt):
        decrypt_file(d / "e", d / "o2", key)


def test_disappearing_message_timer():
    assert not is_expired({"body": "x"}, sent_at=0, now=10**12)
    content = {"body": "x", "expires_in": 60}
    assert expires_at(content, 1000.0) == 1060.0
    assert not is_expired(content, 1000.0, now=1059.9)
    assert is_expired(content, 1000.0, now=1060.0)
    assert expires_at({"expires_in": True}, 0) is None and expires_at({"expires_in": -5}, 0) is None
