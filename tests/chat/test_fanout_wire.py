"""A commit ring becomes a ``message`` frame: the archiver's compact ring as it came, type
aside, once it validates as nothing but a message; any other ring as ``codec.encode`` writes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backend.chat.fanout import _parse
from backend.chat.gateway.wire import text_frame
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
def test_a_compact_ring_goes_out_as_it_came_and_reads_as_its_message(message):
    frame = Message.model_validate(message_wire(message))
    ring = committed_ring(message)
    parsed = _parse(Ring("committed.0", ring))
    assert parsed is not None
    text = '{"type":"message",' + ring.decode()[len('{"type":"committed",') :]
    assert parsed.frame == text_frame(text) and text.isascii()
    assert Message.model_validate_json(text) == frame  # what a client reads: the message
    assert json.loads(text)["ts"] == message_wire(message)["ts"]  # milliseconds, as documented
    assert parsed.room == message.room and parsed.ts == frame.ts


def test_a_compact_ring_with_a_field_a_message_lacks_is_encoded_anew():
    """Its bytes would go to clients as they are, so nothing unchecked may ride along; the
    message itself still goes out (a newer archiver may ring a field this node lacks)."""
    ring = committed_ring(stored())
    extra = ring[:-1] + b',"note":"not a message field"}'
    parsed = _parse(Ring("committed.0", extra))
    assert parsed is not None
    assert parsed.frame == text_frame(encode(Message.model_validate(message_wire(stored()))))
    assert b"note" not in parsed.frame


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
    assert parsed.frame == text_frame(encode(Message.model_validate(message_wire(stored()))))


def test_a_malformed_ring_is_ignored():
    assert _parse(Ring("committed.0", b'{"type":"committed","room":"r"}')) is None
    assert _parse(Ring("committed.0", b"not json")) is None


def test_encode_flat_matches_encode_for_a_plain_message():
    message = Message.model_validate(message_wire(stored()))
    assert encode_flat(message) == encode(message)
