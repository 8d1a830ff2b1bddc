"""The codec turns any input into a value, and every frame type survives a round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from backend.protocol import frames as f
from backend.protocol.codec import (
    BadFrame,
    UnknownFrame,
    decode,
    decode_event,
    decode_request,
    encode,
    from_json_value,
)
from backend.protocol.errors import ErrorCode

MSG = "0123456789abcdef0123456789abcdef"
TS = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)

#: At least one sample of every frame type, in each direction.
CLIENT_SAMPLES: list[f.Frame] = [
    f.Auth(id=1, token="eyJ.abc.def"),
    f.Auth(id=1, token="eyJ.abc.def", device="DEVICE01"),
    f.Ping(id=2),
    f.Send(id=3, msg_id=MSG, room="r_abcdefghijklmnopqrstuv", ciphertext="AwgAEh+/=="),
    f.Send(id=3, msg_id="A" * 22, room="r1", ciphertext="x", kind="m.reaction"),
    f.Send(id=3, msg_id="A" * 22, room="r1", ciphertext="x", ttl=3600),
    f.Sync(id=4),
    f.Sync(id=4, rooms=["r1", "r2"]),
    f.History(id=5, room="r1", limit=50),
    f.History(id=5, room="r1", after=0),
    f.History(id=5, room="r1", before=10, limit=1),
    f.SendToDevice(id=6, user="bob", device="DEVICE02", msg_id=MSG, ciphertext="b2xt"),
    f.AckToDevice(id=7, ids=[MSG, "B" * 22]),
    f.Typing(id=8, room="r1", active=True),
    f.Read(id=9, room="r1", seq=42),
]
SERVER_SAMPLES: list[f.Frame] = [
    f.Result.ok(1),
    f.Result.ok(2, {"seq": 7, "nested": {"a": [1, None]}}),
    f.Result.ok(1, f.AuthOk(user="alice", device="DEVICE01")),
    f.Result.fail(3, ErrorCode.NOT_MEMBER, "you are not in that room"),
    f.Result.fail(None, ErrorCode.BAD_FRAME, "frame is not valid JSON"),
    f.Message(
        room="r1", seq=1, msg_id=MSG, sender="alice", device="DEVICE01", ts=TS, ciphertext="c"
    ),
    f.Message(
        room="r1",
        seq=2,
        msg_id=MSG,
        sender="alice",
        device="DEVICE01",
        ts=TS,
        kind="expired",
        ciphertext="",
        expires_at=TS,
    ),
    f.ToDevice(id=MSG, sender="alice", sender_device="DEVICE01", ts=TS, ciphertext="olm"),
    f.MemberEvent(room="r1", action="join", actor="alice", user="bob", member_count=2, log_seq=3),
    f.MemberEvent(
        room="r1", action="role", actor="alice", user="bob", member_count=2, log_seq=4, role="admin"
    ),
    f.RoomInvite(room="r1", name="plans", by="alice", log_seq=5),
    f.InviteEvent(room="r1", action="decline", user="bob"),
    f.RoomDeleted(room="r1"),
    f.RoomDeleted(room="r1", by="alice", log_seq=9),
    f.FriendEvent.model_validate({"action": "request", "from": "alice", "to": "bob"}),
    f.Presence(user="alice", online=False),
    f.TypingEvent(room="r1", user="alice", active=True),
    f.ReadEvent(room="r1", user="alice", seq=12),
    f.LogSigned(room="r1", seqs=[1, 2]),
    f.Resync(reason="the doorbell reconnected"),
    f.Resync(reason='odd \u2028 \x00 \U0001f600 \\ " text'),
]


def test_every_registered_type_has_a_sample():
    assert {s.type for s in CLIENT_SAMPLES} == set(f.CLIENT_FRAMES)
    assert {s.type for s in SERVER_SAMPLES} == set(f.SERVER_FRAMES)


@pytest.mark.parametrize("frame", CLIENT_SAMPLES, ids=lambda s: s.type)
def test_requests_round_trip(frame):
    text = encode(frame)
    assert text.isascii()
    assert decode_request(text) == frame
    assert encode(decode_request(text)) == text  # type: ignore[arg-type]


@pytest.mark.parametrize("frame", SERVER_SAMPLES, ids=lambda s: s.type)
def test_events_round_trip(frame):
    text = encode(frame)
    assert text.isascii()
    assert decode_event(text) == frame
    assert encode(decode_event(text)) == text  # type: ignore[arg-type]


def test_envelope_shapes():
    assert json.loads(encode(f.Result.ok(4, {"x": 1}))) == {
        "id": 4,
        "type": "result",
        "success": True,
        "result": {"x": 1},
    }
    assert json.loads(encode(f.Result.fail(5, ErrorCode.RATE_LIMITED, "slow down"))) == {
        "id": 5,
        "type": "result",
        "success": False,
        "error": {"code": "rate_limited", "message": "slow down"},
    }
    assert "id" not in json.loads(encode(f.Presence(user="alice", online=True)))
    friend = json.loads(
        encode(f.FriendEvent.model_validate({"action": "accept", "from": "a_b", "to": "bob"}))
    )
    assert friend == {"type": "friend_event", "action": "accept", "from": "a_b", "to": "bob"}


def test_a_result_has_an_error_exactly_when_it_failed():
    with pytest.raises(ValidationError):
        f.Result(id=1, success=True, error=f.ErrorDetail(code="x", message="y"))
    with pytest.raises(ValidationError):
        f.Result(id=1, success=False)


def test_events_ignore_fields_they_do_not_know_and_requests_refuse_them():
    event = decode_event('{"type":"presence","user":"alice","online":true,"since":"later"}')
    assert event == f.Presence(user="alice", online=True)
    bad = decode_request('{"id":3,"type":"ping","since":"later"}')
    assert isinstance(bad, BadFrame) and bad.id == 3 and bad.reason.startswith("since:")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("null", "JSON object"),
        ('"ping"', "JSON object"),
        ('{"id": 1, "type": "ping", "x": NaN}', "not valid JSON"),
        ('{"id": Infinity, "type": "ping"}', "not valid JSON"),
        ('{"id": ' + "9" * 5000 + "}", "not valid JSON"),
        ("[" * 50_000 + "]" * 50_000, "larger than"),
        ("[" * 20_000 + "]" * 20_000, "nested too deeply"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "nested too deeply"),
        ('{"id": 1}', "type: missing"),
        ('{"id": 1, "type": 7}', "type: missing"),
        ('{"id": 1, "type": ""}', "type: missing"),
    ],
)
def test_garbage_becomes_a_bad_frame(text, reason):
    decoded = decode_request(text)
    assert isinstance(decoded, BadFrame) and reason in decoded.reason


def test_size_is_counted_in_utf8_bytes():
    frame = '{"id":1,"type":"result","success":true,"result":{"t":"' + "é" * 600 + '"}}'
    assert len(frame) < 1024 < len(frame.encode())
    assert isinstance(decode_event(frame, max_bytes=1024), BadFrame)
    assert decode_event(frame, max_bytes=2048) == f.Result.ok(1, {"t": "é" * 600})
    assert isinstance(decode_request(b"\xff" * 10), BadFrame)
    assert isinstance(decode_request(b"x" * 70_000), BadFrame)


def test_ids_are_read_even_from_frames_that_fail():
    assert decode_request('{"id": 9, "type": "what"}') == UnknownFrame(type="what", id=9)
    assert decode_request('{"id": true, "type": "what"}') == UnknownFrame(type="what", id=None)
    assert decode_request('{"id": -1, "type": "ping"}').id is None  # type: ignore[union-attr]
    bad = decode_request('{"id": 4, "type": "read", "room": "r", "seq": 0}')
    assert isinstance(bad, BadFrame) and bad.id == 4 and bad.type == "read"


def test_requests_are_strict():
    for text in (
        '{"id": "1", "type": "ping"}',
        '{"id": 1.0, "type": "ping"}',
        '{"id": 0, "type": "ping"}',
        '{"id": 9007199254740992, "type": "ping"}',
        '{"id": 1, "type": "typing", "room": "r", "active": 1}',
        '{"id": 1, "type": "history", "room": "r", "after": 1, "before": 5}',
        '{"id": 1, "type": "history", "room": "r", "limit": 501}',
        '{"id": 1, "type": "send", "msg_id": "short", "room": "r", "ciphertext": "c"}',
        '{"id": 1, "type": "send", "msg_id": "' + MSG + '", "room": "r", "ciphertext": ""}',
        '{"id": 1, "type": "auth", "token": "has space"}',
        '{"id": 1, "type": "auth", "token": "\\ud800"}',
        '{"id": 1, "type": "ack_to_device", "ids": []}',
    ):
        assert isinstance(decode_request(text), BadFrame), text


def test_a_lone_surrogate_from_a_json_escape_is_refused():
    bad = decode_event('{"type":"resync","reason":"\\udc00"}')
    assert isinstance(bad, BadFrame) and bad.reason.startswith("reason:")


def test_a_bad_frame_never_quotes_the_value():
    secret = "hunter2-hunter2-hunter2"
    bad = decode_request(json.dumps({"id": 1, "type": "auth", "token": secret + " !"}))
    assert isinstance(bad, BadFrame) and secret not in bad.reason


def test_a_frame_type_registers_once():
    table = f.FrameTable("test")
    table.register(f.Ping)
    with pytest.raises(ValueError, match="twice"):
        table.register(f.Ping)


# --- nothing raises ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
KNOWN_TYPES = [*sorted(set(f.CLIENT_FRAMES) | set(f.SERVER_FRAMES)), "", "nope"]
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES)},
    optional={
        "id": st.one_of(st.integers(), st.booleans(), st.text(max_size=3)),
        "token": st.text(max_size=20),
        "room": st.text(max_size=70),
        "user": st.text(max_size=40),
        "seq": st.integers(),
        "active": st.booleans() | st.integers(),
        "ciphertext": st.text(max_size=50),
        "msg_id": st.text(alphabet="0123456789abcdef", min_size=30, max_size=34),
        "success": st.booleans(),
        "result": json_values,
        "extra": json_values,
    },
)


def _check(decoded: Any) -> None:
    assert isinstance(decoded, f.Frame | BadFrame | UnknownFrame)
    if isinstance(decoded, f.Frame):
        text = encode(decoded)
        assert text.isascii()
        table = f.CLIENT_FRAMES if isinstance(decoded, f.Request) else f.SERVER_FRAMES
        assert decode(text, table) == decoded


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_is_a_value(value):
    text = json.dumps(value)
    _check(decode_request(text))
    _check(decode_event(text))


@settings(max_examples=500, deadline=None)
@given(frame_like)
def test_frame_like_objects_are_values_and_valid_ones_round_trip(value):
    text = json.dumps(value)
    _check(decode_request(text))
    _check(decode_event(text))
    _check(from_json_value(value, f.CLIENT_FRAMES))


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet='{}[]":,0123456789 \\untrefalsx'))
def test_any_text_is_a_value(text):
    _check(decode_request(text))
    _check(decode_event(text, max_bytes=64))


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_any_bytes_are_a_value(data):
    _check(decode_request(data))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.sampled_from(["[", '{"a":', '{"type":[']))
def test_deep_nesting_is_a_value(depth, opener):
    _check(decode_request(opener * depth * 100))
    _check(decode_request(opener * depth))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_reason_text_encodes_and_survives(reason):
    frame = f.Resync(reason=reason[:256])
    assert decode_event(encode(frame)) == frame


def test_ciphertext_is_empty_exactly_for_expired_messages():
    base = {"room": "r1", "seq": 1, "msg_id": MSG, "sender": "al1", "device": "DEVICE01", "ts": TS}
    with pytest.raises(ValueError):
        f.Message(**base, ciphertext="")
    with pytest.raises(ValueError):
        f.Message(**base, kind="expired", ciphertext="still here")
    with pytest.raises(ValueError):
        f.Send(id=1, msg_id=MSG, room="r1", ciphertext="x", kind="expired")
