"""Hostile frame text for the codec and the gateway: hypothesis strategies and fixed edges."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from backend.protocol.frames import CLIENT_FRAMES

SECRET = "s3cr3t-canary-value-0123456789"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
field_names = st.sampled_from(
    [
        "id",
        "type",
        "token",
        "room",
        "msg_id",
        "ciphertext",
        "kind",
        "rooms",
        "after",
        "before",
        "limit",
        "user",
        "device",
        "ids",
        "active",
        "seq",
        "ttl",
        "extra",
    ]
)


@st.composite
def wrong_typed_frames(draw: st.DrawFn) -> str:
    """A frame of a known type whose fields are random JSON of any type."""
    frame: dict[str, Any] = {"type": draw(st.sampled_from(sorted(CLIENT_FRAMES)))}
    frame |= draw(st.dictionaries(field_names, json_values, max_size=6))
    if draw(st.booleans()):
        frame["type"] = draw(st.sampled_from(sorted(CLIENT_FRAMES)))
    return json.dumps(frame)


unicode_edges = st.sampled_from(
    [
        "\ud800",
        "\udfff",
        "\x00",
        "\ufeff",
        "\u202e",
        "\uffff",
        "\U0010ffff",
        "\u0301" * 50,
        "e\u0301",
        "\u2028",
        "\\",
        '"',
        "\U0001f600" * 10,
    ]
)


@st.composite
def unicode_frames(draw: st.DrawFn) -> str:
    value = draw(st.lists(unicode_edges, min_size=1, max_size=8).map("".join))
    field = draw(field_names)
    kind = draw(st.sampled_from([*sorted(CLIENT_FRAMES), value]))
    return json.dumps({"id": 3, "type": kind, field: value}, ensure_ascii=draw(st.booleans()))


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


hostile_text = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    wrong_typed_frames(),
    unicode_frames(),
    st.integers(min_value=1, max_value=200_000).map(nested),
    st.integers(min_value=1, max_value=50_000).map(nested_object),
    st.integers(min_value=1, max_value=5000).map(lambda n: '{"id":' + "9" * n + ',"type":"ping"}'),
)

#: Fixed cases that must always be tried, whatever hypothesis draws.
EDGE_TEXTS = [
    "",
    " ",
    "null",
    "[]",
    "{}",
    '{"id": 2}',
    '{"id": 2, "type": ""}',
    '{"id": 2, "type": null}',
    '{"id": 2, "type": "' + "x" * 10_000 + '"}',
    '{"id": NaN, "type": "ping"}',
    '{"id": Infinity, "type": "ping"}',
    '{"id": 1e400, "type": "ping"}',
    '{"id": -1, "type": "ping"}',
    '{"id": 9007199254740992, "type": "ping"}',
    '{"id": true, "type": "ping"}',
    '{"id": 2.0, "type": "ping"}',
    '{"id": "2", "type": "ping"}',
    '{"id": 2, "type": "ping", "type": "send"}',
    '{"id": 2, "type": "ping", "__proto__": {}}',
    '{"id": 2, "type": "auth", "token": "' + SECRET + '", "x": "' + SECRET + '"}',
    '{"id": 2, "type": "history", "room": "r", "after": 1, "before": 2}',
    '{"id": 2, "type": "sync", "rooms": [' + ",".join(['"r"'] * 2000) + "]}",
    '{"id": 2, "type": "ack_to_device", "ids": []}',
    '{"id": 2, "type": "send", "room": "\\ud800", "msg_id": "x", "ciphertext": "c"}',
    nested(100_000),
    nested_object(20_000),
    '{"id": 2, "type": "send", "ciphertext": ' + nested(50_000) + "}",
    '{"id":' + "9" * 5000 + ',"type":"ping"}',
]
EDGE_BYTES = [b"\xff\xfe", b"\xc0\x80", b'{"id": 2, "type": "ping"}\xff', b"\xed\xa0\x80"]
