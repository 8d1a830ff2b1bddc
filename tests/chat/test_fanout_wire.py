"""A commit ring becomes exactly the ``message`` frame ``codec.encode`` would write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backend.chat.fanout import _parse
from backend.chat.history import committed_ring, message_wire
from backend.protocol.codec import encode, encode_flat
from backend.protocol.frames import Message
from backend.stores.documents.port import StoredMessage
from backend.stores.ephemeral.port import Ring

TS = datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=UTC)


def stored(**kw: object) -> StoredMessage:
    fields: dict[str, object] = {
        "room": "r_" + "A" * 22,
        "seq": 7,
        "msg_id": "0" * 32,
        "sender": "alice",
        "device": "DEVICE01",
        "ts": TS,
        "ciphertext": "QUJD" * 50,
    }
    fields.update(kw)
    return StoredMessage(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        stored(),
        stored(expires_at=TS + timedelta(hours=1)),
        stored(kind="expired", ciphertext=""),
        stored(ciphertext="caf\u00e9 \u2603"),  # not ASCII: encode's escaping
    ],
)
def test_a_ring_is_encoded_as_encode_would(message):
    frame = Message.model_validate(message_wire(message))
    parsed = _parse(Ring("committed.0", committed_ring(message)))
    assert parsed is not None
    assert parsed.text == encode(frame) and parsed.text.isascii()
    assert parsed.room == message.room and parsed.ts == frame.ts


def test_a_ring_that_is_no_valid_frame_is_ignored_on_both_paths():
    wire = message_wire(stored(ciphertext="lone \ud800 surrogate"))
    fast = committed_ring(stored(ciphertext="lone \ud800 surrogate"))
    general = json.dumps({**wire, "type": "committed"}).encode()
    assert _parse(Ring("committed.0", fast)) is None
    assert _parse(Ring("committed.0", general)) is None


def test_a_ring_in_another_shape_takes_the_general_path():
    wire = {"kind": "m", **message_wire(stored()), "type": "committed"}  # type not first
    parsed = _parse(Ring("committed.0", json.dumps(wire).encode()))
    assert parsed is not None
    assert parsed.text == encode(Message.model_validate(message_wire(stored())))


def test_a_malformed_ring_is_ignored():
    assert _parse(Ring("committed.0", b'{"type":"committed","room":"r"}')) is None
    assert _parse(Ring("committed.0", b"not json")) is None


def test_encode_flat_matches_encode_for_a_plain_message():
    message = Message.model_validate(message_wire(stored()))
    assert encode_flat(message) == encode(message)
